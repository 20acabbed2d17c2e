"""The bridge host's control socket: start, stop and list clouds in the running host.

    reply = request(run_dir, {"op": "start", "plan": plan_dict})
    reply = request(run_dir, {"op": "stop", "cloud": "c8y"})
    reply = request(run_dir, {"op": "list"})
    raise_for(reply)            # the host's error, as our own error class

One request per connection, each way one frame of ``edgeagent.protocol.frame``
(a 4-byte big-endian length, then that many bytes of UTF-8 JSON, at most
64 KiB). Requests::

    {"op": "start", "plan": {...BridgePlan...}}   start the plan's cloud in the host
    {"op": "stop", "cloud": "c8y"}                stop it; answered once it has stopped
    {"op": "list"}                                the clouds the host runs or ran
                                                  (and "retrying": those it will start again)

Replies: ``{"ok": true, "pid": N, ...}`` or ``{"ok": false, "error": "<class
in edgeagent.errors>", "message": ..., "fix": ..., "exit_code": N}``.

The socket is ``run.path/bridge.sock``, mode 0600 in the private run
directory; the host also checks every peer with SO_PEERCRED (its own uid or
root), and the client checks the host the same way (its own uid, root, or
the run directory's owner: systemd's ``agent`` user), because a start
request carries the plan and the plan holds the PIN when the configuration
has it.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

from edgeagent import errors
from edgeagent.errors import AgentError, ServiceError
from edgeagent.protocol.frame import FrameError, FrameStream, PeerClosed

SOCKET_NAME = "bridge.sock"
REQUEST_TIMEOUT = 5.0
"""Seconds a peer has to send its request or read its answer (per frame)."""

_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


class ControlUnavailable(ServiceError):
    """Nothing answers on the control socket (no host, or it is exiting)."""


class ControlTimeout(ServiceError):
    """The host took the request but did not answer in time (it may still carry it out)."""


def socket_path(run_dir: Path) -> Path:
    return run_dir / SOCKET_NAME


MAX_PATH = 107
"""Bytes in an AF_UNIX socket path (sun_path is 108, with its terminating NUL)."""


def socket_problem(path: Path, error: OSError) -> ServiceError:
    """What went wrong with ``run.path/bridge.sock`` (connect or bind), and the fix."""
    if len(os.fsencode(path)) > MAX_PATH:
        return ServiceError(
            f"the control socket {path} is {len(os.fsencode(path))} bytes long; "
            f"a Unix socket's path may have at most {MAX_PATH}",
            "set run.path to a shorter directory (agent config set run.path /run/agent)",
        )
    if isinstance(error, PermissionError):
        return ServiceError(
            f"cannot use the control socket {path}: {error.strerror}",
            "run this as the bridge's user or root",
        )
    return ServiceError(
        f"cannot use the control socket {path}: {error.strerror or error}",
        f"check run.path ({path.parent})",
    )


def refusal(uid: int) -> ServiceError:
    """The host's answer to a peer whose uid may not use it (it holds no secret)."""
    return ServiceError(
        f"uid {uid} may not use the bridge host",
        f"run as uid {os.getuid()} or root",
    )


def peer_credentials(conn: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end, as the kernel saw it at connect()."""
    pid, uid, _gid = _UCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    return pid, uid


def trusted_uid(uid: int) -> bool:
    """Our own user or root: nobody else starts, stops or reads a bridge."""
    return uid in (os.getuid(), 0)


def request(
    run_dir: Path,
    body: dict[str, Any],
    timeout: float,
    log_hint: str = "logs.path/bridge-host.log",
) -> dict[str, Any]:
    """Send one request to the host in ``run_dir``; its reply.

    ControlUnavailable when no host listens (or it closed on us before
    answering, which it does only while exiting: the request was not done).
    ``timeout``: how long the host may take to answer (a start opens the key).
    ``log_hint``: where the host logs (under systemd: the unit's journal).
    """
    path = socket_path(run_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(REQUEST_TIMEOUT)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise ControlUnavailable(
                f"no bridge host answers on {path}: {error.strerror}"
            ) from None
        except OSError as error:  # not ours to use, or a path too long for AF_UNIX
            raise socket_problem(path, error) from None
        pid, uid = peer_credentials(sock)
        # Under systemd the host is the unit's user, who owns the run directory.
        if not trusted_uid(uid) and uid != run_dir.stat().st_uid:
            raise ServiceError(
                f"{path} is served by pid {pid} of uid {uid}, not by our user, root "
                "or the owner of the run directory; nothing was sent to it",
                f"check who can write {run_dir} (run.path)",
            )
        stream = FrameStream(sock, idle_timeout=timeout, frame_timeout=REQUEST_TIMEOUT)
        try:
            stream.write(json.dumps(body).encode())
            answer = stream.read()
        except (PeerClosed, ConnectionResetError, BrokenPipeError) as error:
            raise ControlUnavailable(f"the bridge host closed {path} without an answer") from error
        except (FrameError, TimeoutError) as error:
            raise ControlTimeout(
                f"the bridge host did not answer on {path} in time ({error})",
                f"see {log_hint}",
            ) from error
    finally:
        sock.close()
    try:
        reply: dict[str, Any] = json.loads(answer)
    except ValueError as error:
        raise ServiceError(
            f"the bridge host answered something that is not JSON: {error}"
        ) from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ServiceError(f"the bridge host answered {answer[:200]!r}")
    return reply


def ok_reply(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def error_reply(error: AgentError, exit_code: int) -> dict[str, Any]:
    return {
        "ok": False,
        "error": type(error).__name__,
        "message": error.cause,
        "fix": error.fix,
        "exit_code": exit_code,
    }


def error_of(reply: dict[str, Any]) -> AgentError:
    """The error a failed reply carries, as its own class where we have it (so the
    exit code is the same as if it had happened here), else ServiceError."""
    message = str(reply.get("message") or "the bridge host refused the request")
    fix = str(reply.get("fix") or "")
    cls = getattr(errors, str(reply.get("error")), None)
    if isinstance(cls, type) and issubclass(cls, AgentError):
        try:
            return cls(message, fix)
        except TypeError:  # a class with its own constructor
            pass
    return ServiceError(message, fix)


def raise_for(reply: dict[str, Any]) -> dict[str, Any]:
    """``reply`` when it says ok; else its error, raised."""
    if not reply["ok"]:
        raise error_of(reply)
    return reply

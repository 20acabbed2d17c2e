"""One connection to the signing service (`agent p11-server`), greeted and kept.

    conn = ServiceConnection(Path("/run/agent-p11-server/agent-p11-server.sock"))
    reply = conn.request({"op": "public_key", "uri": None})
    conn.request({"op": "create_key", ...}, retry=False)   # not safe to send twice
    conn.close()

Requests are serialised on the one connection. When a kept connection turns
out dead (the service restarted or closed it while idle), a request marked
``retry`` is sent once more on a new connection: right for signing and
reading, which have no side effects, wrong for token administration, which
a caller sends with ``retry=False``.

Before it sends anything (the hello included), the client checks who it is
talking to: the socket file must be a socket owned by a trusted user, and
the process that answers (SO_PEERCRED) must run as one. Trusted are root,
the client's own user (who could read its secrets anyway) and the service
user the packaging creates, ``agent-p11`` (packaging/agent-p11-server.*:
User= and SocketUser=), when that user exists. Anyone else may have bound a
socket at the path (a writable directory, a service that is not running)
to hand the agent forged public keys or to collect what it signs.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Any

from edgeagent import errors
from edgeagent.protocol import messages as m
from edgeagent.protocol.frame import FrameError, FrameStream, FrameTimeout, PeerClosed

# Slow tokens (a TPM) sign in hundreds of ms, sometimes seconds.
REQUEST_TIMEOUT = 60.0
# How long a full listen queue (a burst of clients, or another local user
# flooding the service) is waited out before the service counts as unreachable.
CONNECT_TIMEOUT = 10.0
SERVICE_USER = "agent-p11"  # packaging/agent-p11-server.service User=, .socket SocketUser=
_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


def trusted_uids() -> frozenset[int]:
    """Who may own the socket and answer on it: root, this user, the service user."""
    uids = {0, os.geteuid()}
    with contextlib.suppress(KeyError):  # not installed from the packaging
        uids.add(pwd.getpwnam(SERVICE_USER).pw_uid)
    return frozenset(uids)


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_service_socket(path: Path, conn: socket.socket) -> None:
    """SignerUnreachable unless ``path`` and the process behind ``conn`` are trusted."""
    trusted = trusted_uids()
    allowed = ", ".join(_user(uid) for uid in sorted(trusted))
    try:
        info = path.lstat()
    except OSError as error:
        raise errors.SignerUnreachable(
            f"cannot check the signing service socket {path}: {error.strerror}",
            "check device.cryptoki.socket_path",
        ) from error
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid not in trusted:
        what = "a socket" if stat.S_ISSOCK(info.st_mode) else "not a socket"
        raise errors.SignerUnreachable(
            f"{path} is {what} owned by {_user(info.st_uid)}; the agent trusts a signing "
            f"service socket only from {allowed}",
            "remove it and restart the signing service (systemctl restart "
            "agent-p11-server.socket); if you did not create it, someone may be "
            "impersonating the service",
        )
    _pid, uid, _gid = _UCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    if uid not in trusted:
        raise errors.SignerUnreachable(
            f"the process answering on {path} runs as {_user(uid)}; the agent trusts a "
            f"signing service only from {allowed}",
            "run agent p11-server as root or as the service user agent-p11; if you did "
            "not start this process, someone may be impersonating the service",
        )


class ServiceConnection:
    def __init__(self, socket_path: Path, timeout: float = REQUEST_TIMEOUT) -> None:
        self.path = socket_path
        self._timeout = timeout
        self._lock = threading.Lock()
        self._stream: FrameStream | None = None

    def request(self, request: dict[str, Any], *, retry: bool = True) -> dict[str, Any]:
        """Send ``request``, return the ``ok`` reply; raise our error for an error reply."""
        with self._lock:
            for attempt in (1, 2):
                fresh = self._stream is None
                stream = self._connect()
                try:
                    stream.write(m.encode(request))
                    reply = m.decode(stream.read())
                except (TimeoutError, FrameTimeout) as error:
                    # Not sent again: a service that stalls would stall twice.
                    self._disconnect()
                    raise errors.SignerUnreachable(
                        f"the signing service at {self.path} did not answer within "
                        f"{self._timeout:.0f} s",
                        "check that the token is present and `agent p11-server` is healthy",
                    ) from error
                except (PeerClosed, FrameError, BrokenPipeError, ConnectionResetError) as error:
                    self._disconnect()
                    if attempt == 2 or fresh or not retry:
                        raise errors.SignerUnreachable(
                            f"the signing service at {self.path} closed the connection "
                            f"({type(error).__name__})",
                            "check `agent p11-server` (journalctl -u agent-p11-server)",
                        ) from error
                    continue  # the service restarted since our last request
                except m.BadRequest as error:
                    self._disconnect()
                    raise errors.SignerProtocolError(
                        f"the signing service at {self.path} sent a malformed answer: {error.cause}"
                    ) from error
                m.raise_for_error(reply)
                return reply
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def _connect(self) -> FrameStream:
        if self._stream is not None:
            return self._stream
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(self._timeout)
        try:
            self._connect_waiting(conn)
        except FileNotFoundError:
            conn.close()
            raise errors.SignerUnreachable(
                f"no signing service socket at {self.path}",
                "start it (systemctl start agent-p11-server.socket, or `agent p11-server`), "
                "or fix device.cryptoki.socket_path",
            ) from None
        except ConnectionRefusedError:
            conn.close()
            raise errors.SignerUnreachable(
                f"the signing service at {self.path} is not running (connection refused)",
                "start it: systemctl start agent-p11-server (or run `agent p11-server`)",
            ) from None
        except PermissionError:
            conn.close()
            raise errors.SignerUnreachable(
                f"permission denied on the signing service socket {self.path}",
                "run the agent as a user in the socket's group (p11_server.socket_group)",
            ) from None
        try:
            check_service_socket(self.path, conn)
        except errors.AgentError:
            conn.close()
            raise
        stream = FrameStream(conn, idle_timeout=self._timeout, frame_timeout=self._timeout)
        try:
            stream.write(m.encode({"op": "hello", "versions": list(m.VERSIONS)}))
            reply = m.decode(stream.read())
        except (OSError, PeerClosed, FrameError, m.BadRequest) as error:
            conn.close()
            raise errors.SignerUnreachable(
                f"the signing service at {self.path} did not answer hello ({error})",
                "check `agent p11-server` is running and of the same edgeagent version",
            ) from error
        try:
            m.raise_for_error(reply)
        except errors.AgentError:
            conn.close()
            raise
        self._stream = stream
        return stream

    def _connect_waiting(self, conn: socket.socket) -> None:
        """connect(), waiting out a full listen queue: with a timeout set, Linux
        answers EAGAIN at once for a Unix socket whose backlog is full."""
        deadline = time.monotonic() + min(self._timeout, CONNECT_TIMEOUT)
        while True:
            try:
                conn.connect(str(self.path))
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    conn.close()
                    raise errors.SignerUnreachable(
                        f"the signing service at {self.path} accepted no connection for "
                        f"{min(self._timeout, CONNECT_TIMEOUT):.0f} s (its queue is full)",
                        "check for a local process holding or flooding connections to it "
                        "(ss -xp | grep agent-p11-server)",
                    ) from None
                time.sleep(0.01)

    def _disconnect(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

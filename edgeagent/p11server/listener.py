"""The signing service's listening socket: inherited from systemd, or bound here.

Binding never steals a socket a live server holds and never trips over a
stale one: a lock file next to the socket is held for the server's life;
when the lock is free, a left-over socket file is pinged once and removed
only if nothing answers.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import logging
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from edgeagent.errors import ServiceError
from edgeagent.safe_files import ensure_private_dir, open_no_follow

log = logging.getLogger("edgeagent.p11server")

SD_LISTEN_FDS_START = 3
SOCKET_MODE = 0o660


def systemd_socket() -> socket.socket | None:
    """The listening socket systemd passed us (socket activation), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    if count < 1:
        return None
    if count > 1:
        log.warning("systemd passed %d sockets; serving the first only", count)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ServiceError(
            "the socket systemd passed is not a Unix stream socket",
            "use ListenStream=<path> in agent-p11-server.socket",
        )
    # Not for our children.
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return sock


@contextlib.contextmanager
def bound_socket(path: Path, group: str | None) -> Iterator[socket.socket]:
    """Bind ``path`` (mode 0660, ``group``) for the duration of the block."""
    # Another user able to write this directory could make us create (or
    # chown) files anywhere through planted links: refuse it (safe_files).
    ensure_private_dir(path.parent, "device.cryptoki.socket_path")
    lock_path = path.with_name(path.name + ".lock")
    with os.fdopen(open_no_follow(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServiceError(
                f"another signing service is already serving {path}",
                "stop it first, or give this one another device.cryptoki.socket_path",
            ) from None
        _remove_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Never let the socket exist, even for an instant, with wider access.
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        try:
            if group is not None:
                os.chown(path, -1, _gid(group))
            os.chmod(path, SOCKET_MODE)
            sock.listen(64)
            yield sock
        finally:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _remove_stale(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ServiceError(
            f"{path} exists and is not a socket",
            "remove it, or set device.cryptoki.socket_path to another path",
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale socket %s", path)
        path.unlink()
        return
    except OSError as error:
        raise ServiceError(f"cannot check the existing socket {path}: {error}") from error
    finally:
        probe.close()
    raise ServiceError(
        f"something is already listening on {path} (without our lock)",
        "stop that process, or set device.cryptoki.socket_path to another path",
    )


def _gid(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ServiceError(
            f"group {group!r} does not exist",
            f"create it (groupadd {group}) or set p11_server.socket_group to an existing group",
        ) from None

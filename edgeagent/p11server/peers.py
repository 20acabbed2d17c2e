"""Who may ask the signing service: checked with SO_PEERCRED on every connection.

The socket's file mode (0660) is the first gate; this is the second, and the
one that cannot be widened by a careless chmod.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from edgeagent.errors import ConfigError

_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    groups: frozenset[int]

    def __str__(self) -> str:
        return f"uid={self.uid} gid={self.gid} pid={self.pid}"


def peer_of(conn: socket.socket) -> Peer:
    """The connecting process's credentials, as the kernel saw them at connect()."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return Peer(pid, uid, gid, frozenset({gid}) | _supplementary_groups(pid))


def _supplementary_groups(pid: int) -> frozenset[int]:
    # SO_PEERCRED carries the primary gid only. /proc is read right after
    # accept(); a peer that exits and has its pid reused in that instant would
    # only be judged by the new process's groups, which gains it nothing.
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return frozenset(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return frozenset()


@dataclass(frozen=True)
class PeerPolicy:
    """Serve these uids, and members of these gids."""

    uids: frozenset[int]
    gids: frozenset[int]

    def allows(self, peer: Peer) -> bool:
        return peer.uid in self.uids or bool(peer.groups & self.gids)

    def describe(self) -> str:
        users = ", ".join(_user_name(u) for u in sorted(self.uids)) or "nobody"
        groups = ", ".join(_group_name(g) for g in sorted(self.gids)) or "none"
        return f"users {users}; groups {groups}"

    @classmethod
    def from_names(cls, users: str, groups: str, socket_group: str | None) -> PeerPolicy:
        """Our own user always; the listed users; the listed groups, else the socket's group."""
        uids = {os.getuid()} | {_uid(u) for u in _split(users)}
        group_names = _split(groups) or ([socket_group] if socket_group else [])
        gids = {_gid(g) for g in group_names}
        return cls(frozenset(uids), frozenset(gids))


def _split(names: str) -> list[str]:
    return [n.strip() for n in names.split(",") if n.strip()]


def _uid(name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise ConfigError(
            f"p11_server.allowed_users names {name!r}, which is not a user on this system",
            "list existing user names or numeric uids",
        ) from None


def _gid(name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(
            f"group {name!r} (p11_server.allowed_groups / socket_group) does not exist",
            "list existing group names or numeric gids",
        ) from None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)

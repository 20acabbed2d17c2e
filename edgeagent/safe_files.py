"""Files the agent creates in its run, log and socket directories, safe against other users.

    ensure_private_dir(Path("/run/agent"), "run.path")   # create, or refuse a shared one
    fd = open_no_follow(Path("/run/agent/bridge-c8y.pid"), os.O_RDWR | os.O_CREAT)

A root-run agent that follows a symlink another user planted truncates or
chowns whatever it points at. Two defences, both needed:

* a directory the agent writes into must be writable by no other non-root
  user (owner root or us, no group or world write unless the group is root's);
  a sticky world-writable directory like /tmp is refused too: another user
  can still plant names there before we create ours, and the kernel's
  ``protected_symlinks`` is a sysctl an image may turn off;
* every file is opened with ``O_NOFOLLOW`` (``O_EXCL`` where it must be new)
  and, once open, checked to be a regular file we own with a single link, so
  a hard link to someone else's file is not written either.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from edgeagent.errors import AgentError, ServiceError

ROOT_UID = 0
ROOT_GID = 0


def foreign_writers(info: os.stat_result, euid: int | None = None) -> str | None:
    """Who besides root and us can write an inode with this stat, in words; None: nobody."""
    me = os.geteuid() if euid is None else euid
    mode = info.st_mode
    if info.st_uid not in (ROOT_UID, me):
        return f"its owner (uid {info.st_uid})"
    if mode & stat.S_IWOTH:
        sticky = " (even with the sticky bit)" if mode & stat.S_ISVTX else ""
        return f"every user{sticky}"
    if mode & stat.S_IWGRP and info.st_gid != ROOT_GID:
        return f"its group (gid {info.st_gid})"
    return None


def changeable_by_others(path: Path) -> tuple[Path, str] | None:
    """The first of ``path`` (followed) and its directories a non-root user could change, and who.

    For what root trusts: a module it loads, the configuration that names it.
    A root-owned sticky directory above (like /tmp) does not count: nobody
    else may rename or remove what root owns inside it.
    """
    real = Path(os.path.realpath(path))
    for place in (real, *real.parents):
        try:
            info = place.stat()
        except OSError:
            continue  # whoever opens the file reports what is missing
        who = foreign_writers(info, euid=ROOT_UID)
        root_sticky = place != real and info.st_mode & stat.S_ISVTX and info.st_uid == ROOT_UID
        if who is not None and not root_sticky:
            return place, who
    return None


def check_private_dir(path: Path, key: str, error: type[AgentError] = ServiceError) -> None:
    """Refuse ``path`` (set by config ``key``) if another non-root user can write it.

    Its ancestors are checked too (a user who can rename ``/srv/x`` can swap
    ``/srv/x/run`` for a directory of their own); a sticky ancestor such as
    /tmp is fine there, since nobody else may rename what we own inside it.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise error(f"{path} ({key}) does not exist", f"create it: mkdir -m 0755 {path}") from None
    if stat.S_ISLNK(info.st_mode):
        raise error(
            f"{path} ({key}) is a symbolic link",
            f"set {key} to the real directory ({path.resolve()})",
        )
    if not stat.S_ISDIR(info.st_mode):
        raise error(f"{path} ({key}) is not a directory", f"set {key} to a directory")
    who = foreign_writers(info)
    if who is not None:
        raise error(
            f"{path} ({key}) can be written by {who}: another user could plant links "
            "or pid files there that the agent would follow",
            f"chown root:root {path} && chmod 0755 {path}, or set {key} to a directory "
            "only root (or the agent's user) can write",
        )
    for parent in path.absolute().parents:
        parent_info = parent.stat()
        parent_who = foreign_writers(parent_info)
        if parent_who is not None and not parent_info.st_mode & stat.S_ISVTX:
            raise error(
                f"{parent}, above {path} ({key}), can be written by {parent_who}: "
                f"another user could replace {path}",
                f"chmod o-w,g-w {parent}, or set {key} to a directory "
                "under one only root can write",
            )


def ensure_private_dir(path: Path, key: str, mode: int = 0o755) -> None:
    """Create ``path`` (and its parents) if missing, then refuse it if it is shared."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    check_private_dir(path, key)


def open_no_follow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that never follows a symlink and only returns a regular file we own.

    Add ``os.O_EXCL`` to ``flags`` where the file must be new. Raises
    ServiceError naming the path when it is a link, not a regular file, owned
    by someone else or hard-linked elsewhere.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:  # the last component is a symlink
            raise ServiceError(
                f"{path} is a symbolic link; refusing to follow it",
                f"remove it (rm {path}) and check who can write {path.parent}",
            ) from None
        raise
    try:
        info = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file"
        elif info.st_uid != os.geteuid():
            problem = f"belongs to uid {info.st_uid}, not to us (uid {os.geteuid()})"
        elif info.st_nlink != 1:
            problem = f"has {info.st_nlink} hard links"
        if problem is not None:
            raise ServiceError(
                f"{path} {problem}; refusing to use it",
                f"remove it (rm {path}) and check who can write {path.parent}",
            )
    except BaseException:
        os.close(fd)
        raise
    return fd

"""Who holds a file's ``flock``, read from ``/proc/locks``: without opening the file.

    flock_holder(Path("/run/agent/bridge-c8y.pid"))   # 4321; None when nobody holds it

A pid file under systemd is 0600 (the unit's ``UMask=0077``) and owned by the
bridge's user, so a monitoring user running `agent status` cannot open it to
probe its lock. ``/proc/locks`` is world-readable and names the holder of
every lock by device and inode, which ``lstat`` gives without opening the
file (a symbolic link is never followed: it names no lock of ours).
"""

from __future__ import annotations

import os
from pathlib import Path

PROC_LOCKS = Path("/proc/locks")
HIDDEN_PID = 0
"""The holder's pid when it is outside our pid namespace: the lock is held, by whom is unknown."""


def flock_holder(path: Path, locks: Path = PROC_LOCKS) -> int | None:
    """The pid holding an exclusive ``flock`` on ``path`` (``HIDDEN_PID`` when not
    visible from here); None when nobody does or there is no such file.

    Raises OSError when ``path`` cannot be looked at or ``locks`` cannot be read.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in locks.read_text().splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; a waiter's line has
        # "->" after the number, which shifts the fields: it holds nothing.
        fields = line.split()
        held = len(fields) >= 6 and fields[1] == "FLOCK" and fields[3] == "WRITE"
        if held and fields[5] == wanted:
            pid = fields[4]
            return int(pid) if pid.isdigit() and int(pid) > 0 else HIDDEN_PID
    return None

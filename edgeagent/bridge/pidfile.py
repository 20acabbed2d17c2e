"""The bridge's pid file: claimed with an exclusive flock for the process's life.

A pid file whose lock is free is stale; one whose lock is held names a live
bridge (see ``edgeagent.bridge.service``, which reads it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from edgeagent.errors import ServiceError
from edgeagent.safe_files import ensure_private_dir, open_no_follow


@contextlib.contextmanager
def hold_pid_file(path: Path) -> Iterator[None]:
    """Claim ``path`` for this process's life; refuse if a live bridge holds it."""
    # The run directory may be shared with a less trusted user: refuse that,
    # and never follow a link planted at our name (see edgeagent.safe_files).
    ensure_private_dir(path.parent, "run.path")
    for _ in range(5):
        handle = os.fdopen(open_no_follow(path, os.O_RDWR | os.O_CREAT), "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise ServiceError(
                f"another bridge (pid {holder}) already holds {path}",
                "stop it first: agent disconnect <cloud>",
            ) from None
        # Someone checking for a stale file may have unlinked it between our
        # open and our lock: then we hold a file nobody else can see. Retry.
        try:
            same = os.fstat(handle.fileno()).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    else:
        raise ServiceError(f"could not claim {path}: it keeps being replaced")
    with handle:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            # Unlink while still holding the lock, so nobody reads a stale pid.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

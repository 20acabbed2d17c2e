"""The bridge's pid files: claimed with an exclusive flock while the bridge runs.

A pid file whose lock is free is stale; one whose lock is held names a live
bridge (see ``edgeagent.bridge.service``, which reads it). A flock belongs to
the open file, so one process (the bridge host) holds one per cloud it runs,
each for as long as that cloud runs: ``run.path/bridge-<cloud>.pid`` is the
truth for "is cloud X running, and which pid", whatever process runs it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from edgeagent.bridge.holder import already_running
from edgeagent.errors import ServiceError
from edgeagent.safe_files import ensure_private_dir, open_no_follow

PROBE_RETRIES = 20
PROBE_WAIT = 0.05


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@contextlib.contextmanager
def hold_pid_file(path: Path) -> Iterator[None]:
    """Claim ``path`` for the block; BridgeAlreadyRunning if a live bridge holds it."""
    # The run directory may be shared with a less trusted user: refuse that,
    # and never follow a link planted at our name (see edgeagent.safe_files).
    ensure_private_dir(path.parent, "run.path")
    replaced = probed = 0
    while True:
        handle = os.fdopen(open_no_follow(path, os.O_RDWR | os.O_CREAT), "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            pid = int(holder) if holder.isdigit() else None
            # A reader's probe (processes.locked_pid: `agent status` polls it)
            # holds a shared lock for an instant on a file that names no live
            # pid; a bridge that just locked it writes its pid next. Look again.
            if probed < PROBE_RETRIES and (pid is None or not _alive(pid)):
                probed += 1
                time.sleep(PROBE_WAIT)
                continue
            raise already_running(path, pid) from None
        # Someone checking for a stale file may have unlinked it between our
        # open and our lock: then we hold a file nobody else can see. Retry.
        try:
            same = os.fstat(handle.fileno()).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
        replaced += 1
        if replaced >= 5:
            raise ServiceError(f"could not claim {path}: it keeps being replaced")
    with handle:
        # It holds only a pid: readable by all (`agent status` as a monitoring
        # user), whatever the umask (systemd's UMask=0077 made it 0600).
        os.fchmod(handle.fileno(), 0o644)
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

"""Who holds a file's flock, read from /proc/locks without opening the file."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from edgeagent.bridge.proc_locks import HIDDEN_PID, flock_holder


def test_the_holder_of_a_real_lock_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bridge-c8y.pid"
    assert flock_holder(path) is None  # no such file
    with path.open("w") as handle:
        assert flock_holder(path) is None  # nobody holds it
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert flock_holder(path) == os.getpid()
        fcntl.flock(handle, fcntl.LOCK_UN)
        assert flock_holder(path) is None


def test_waiters_shared_locks_and_hidden_holders(tmp_path: Path) -> None:
    path = tmp_path / "bridge-c8y.pid"
    path.touch()
    info = os.lstat(path)
    where = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    locks = tmp_path / "locks"

    def holder(*lines: str) -> int | None:
        locks.write_text("".join(line.replace("HERE", where) + "\n" for line in lines))
        return flock_holder(path, locks)

    assert holder("1: FLOCK  ADVISORY  WRITE 1234 HERE 0 EOF") == 1234
    assert holder("1: FLOCK  ADVISORY  WRITE 1234 fd:01:1 0 EOF") is None  # another file
    assert holder("1: POSIX  ADVISORY  WRITE 1234 HERE 0 EOF") is None  # not a flock
    assert holder("1: FLOCK  ADVISORY  READ 1234 HERE 0 EOF") is None  # a probe, not a holder
    assert holder("1: -> FLOCK  ADVISORY  WRITE 77 HERE 0 EOF") is None  # waiting, not holding
    # A holder in another pid namespace shows as pid 0: held, by whom unknown.
    assert holder("1: FLOCK  ADVISORY  WRITE 0 HERE 0 EOF") == HIDDEN_PID

"""The bridge's pid files: readable by a monitoring user, and never "remove it" for EACCES."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from edgeagent.bridge import holder
from edgeagent.bridge.pidfile import hold_pid_file
from edgeagent.errors import ServiceError


def test_a_pid_file_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    """M6: under systemd's UMask=0077 it was 0600, and `agent status` as nagios failed."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    old = os.umask(0o077)
    try:
        with hold_pid_file(run_dir / "bridge-c8y.pid"):
            mode = (run_dir / "bridge-c8y.pid").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o644


def test_a_pid_file_we_may_not_read_is_a_permission_problem_not_a_file_to_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M6: "remove it" for EACCES made an operator delete a live bridge's pid file."""
    pid_file = tmp_path / "bridge-c8y.pid"

    def refused(path: object, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(holder.os, "open", refused)
    with pytest.raises(ServiceError) as caught:
        holder.open_pid_file(pid_file)
    monkeypatch.undo()
    assert "Permission denied" in caught.value.cause
    assert "rm " not in caught.value.fix and "remove" not in caught.value.fix
    assert "symbolic link" not in caught.value.cause

"""The bridge's pid files: readable by a monitoring user, and never "remove it" for EACCES."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from pathlib import Path

import pytest

from edgeagent.bridge import holder
from edgeagent.bridge.pidfile import hold_pid_file
from edgeagent.errors import BridgeAlreadyRunning, ServiceError


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


def test_a_reader_s_probe_on_a_stale_pid_file_does_not_refuse_the_start(tmp_path: Path) -> None:
    """L8: `agent status` takes LOCK_SH on a free pid file for an instant; a start
    in that instant failed as "already running" naming a dead pid (or none)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    pid_file = run_dir / "bridge-c8y.pid"
    pid_file.write_text("999999999\n")  # no such process
    probe = pid_file.open()
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    release = threading.Timer(0.2, probe.close)
    release.start()
    try:
        with hold_pid_file(pid_file):
            assert pid_file.read_text() == f"{os.getpid()}\n"
    finally:
        release.join()


def test_a_live_holder_is_still_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    pid_file = run_dir / "bridge-c8y.pid"
    refused = pytest.raises(BridgeAlreadyRunning, match=str(os.getpid()))
    with hold_pid_file(pid_file), refused, hold_pid_file(pid_file):
        pass

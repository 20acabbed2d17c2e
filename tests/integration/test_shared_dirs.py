"""Issue 13 part 1: a root-run agent and a run/log/socket directory another user can write.

Each attack is made as it was found: ``nobody`` (through setpriv) plants a
symlink or a locked pid file in a directory it owns, then root runs the
agent's code. The fixed agent refuses the directory (saying which and how to
fix it), never follows a link at a name it opens, and signals only its own
bridge.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent.bridge.pidfile import hold_pid_file
from edgeagent.bridge.service import BridgeService
from edgeagent.errors import ServiceError
from edgeagent.p11server.listener import bound_socket

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
PRECIOUS = "root's data\n"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root + setpriv"
)


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory ``nobody`` can search (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="edgeagent-shared-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


@pytest.fixture
def shared(base: Path) -> Path:
    """A run/log directory owned by another user, as packaging once made /run/agent."""
    path = base / "shared"
    path.mkdir(mode=0o755)
    os.chown(path, NOBODY, NOBODY)
    return path


@pytest.fixture
def private(base: Path) -> Path:
    path = base / "private"
    path.mkdir(mode=0o755)
    return path


@pytest.fixture
def victim(base: Path) -> Path:
    """A file only root may write: what the attacker wants truncated."""
    path = base / "victim"
    path.write_text(PRECIOUS)
    path.chmod(0o644)
    return path


def as_nobody(*command: str) -> None:
    subprocess.run([*AS_NOBODY, *command], check=True, capture_output=True, timeout=30)


def test_a_symlink_planted_at_the_pid_file_is_not_followed(shared: Path, victim: Path) -> None:
    pid_file = shared / "bridge-c8y.pid"
    as_nobody("ln", "-s", str(victim), str(pid_file))
    with pytest.raises(ServiceError) as caught, hold_pid_file(pid_file):
        pass
    assert f"{shared} (run.path) can be written by its owner (uid {NOBODY})" in str(caught.value)
    assert "chown root:root" in caught.value.fix
    assert victim.read_text() == PRECIOUS


def test_a_symlink_at_the_pid_file_is_refused_even_in_a_private_dir(
    private: Path, victim: Path
) -> None:
    pid_file = private / "bridge-c8y.pid"
    pid_file.symlink_to(victim)
    with pytest.raises(ServiceError, match="symbolic link"), hold_pid_file(pid_file):
        pass
    assert victim.read_text() == PRECIOUS


def test_a_hard_link_at_the_pid_file_is_refused(private: Path, victim: Path) -> None:
    pid_file = private / "bridge-c8y.pid"
    os.link(victim, pid_file)
    with pytest.raises(ServiceError, match="2 hard links"), hold_pid_file(pid_file):
        pass
    assert victim.read_text() == PRECIOUS


def test_a_symlink_planted_at_the_log_file_is_not_followed(
    base: Path, shared: Path, private: Path, victim: Path
) -> None:
    as_nobody("ln", "-s", str(victim), str(shared / "bridge-c8y.log"))
    service = BridgeService("c8y", base / "config", private, shared)
    with pytest.raises(ServiceError, match=r"\(logs.path\) can be written by its owner"):
        service.start()
    assert victim.read_text() == PRECIOUS


def test_a_symlink_at_the_log_file_is_refused_even_in_a_private_dir(
    base: Path, private: Path, victim: Path
) -> None:
    logs = private / "logs"
    logs.mkdir()
    (logs / "bridge-c8y.log").symlink_to(victim)
    service = BridgeService("c8y", base / "config", private, logs)
    with pytest.raises(ServiceError, match="symbolic link"):
        service.start()
    assert victim.read_text() == PRECIOUS


def test_a_sticky_world_writable_dir_is_refused_too(base: Path) -> None:
    tmp_like = base / "tmp-like"
    tmp_like.mkdir()
    tmp_like.chmod(0o1777)
    with pytest.raises(ServiceError) as caught, hold_pid_file(tmp_like / "bridge-c8y.pid"):
        pass
    assert "every user (even with the sticky bit)" in str(caught.value)


def test_the_lock_next_to_the_socket_creates_no_file_elsewhere(shared: Path, base: Path) -> None:
    target = base / "created-by-root"
    as_nobody("ln", "-s", str(target), str(shared / "p11.sock.lock"))
    with (
        pytest.raises(ServiceError, match=r"\(device.cryptoki.socket_path\) can be written"),
        bound_socket(shared / "p11.sock", None),
    ):
        pass
    assert not target.exists()


def test_the_lock_next_to_the_socket_is_never_a_followed_link(private: Path, base: Path) -> None:
    target = base / "created-by-root"
    (private / "p11.sock.lock").symlink_to(target)
    socket_path = private / "p11.sock"
    with pytest.raises(ServiceError, match="symbolic link"), bound_socket(socket_path, None):
        pass
    assert not target.exists()


# Holds an exclusive flock on argv[1] (writing argv[2] into it) until killed.
_HOLD_LOCK = textwrap.dedent(
    """
    import fcntl, sys, time
    handle = open(sys.argv[1], "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    handle.write(sys.argv[2] + "\\n")
    handle.flush()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_disconnect_does_not_signal_a_pid_planted_in_a_locked_pid_file(
    base: Path, shared: Path
) -> None:
    victim = subprocess.Popen(["sleep", "120"])  # a root process the attacker wants dead
    pid_file = shared / "bridge-c8y.pid"
    holder = subprocess.Popen(
        [*AS_NOBODY, "/usr/bin/python3", "-c", _HOLD_LOCK, str(pid_file), str(victim.pid)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        service = BridgeService("c8y", base / "config", shared, shared)
        assert service.running_pid() == victim.pid  # the attack's premise holds
        with pytest.raises(ServiceError) as caught:
            service.stop()
        assert f"names pid {victim.pid}, which is not this bridge" in str(caught.value)
        assert "nothing was signalled" in str(caught.value)
        time.sleep(0.3)
        assert victim.poll() is None, "the planted pid was signalled"
    finally:
        for process in (holder, victim):
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


def test_disconnect_refuses_a_bridge_like_process_that_does_not_hold_the_lock(
    base: Path, private: Path
) -> None:
    # A process whose command line looks like our bridge's, named in a pid
    # file someone else holds locked.
    pid_file = private / "bridge-c8y.pid"
    lookalike = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
            "edgeagent.cli.bridge_runtime",
            "--pid-file",
            str(pid_file),
        ]
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(pid_file), str(lookalike.pid)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        service = BridgeService("c8y", base / "config", private, private)
        with pytest.raises(ServiceError, match=f"lock is held by pid {holder.pid}"):
            service.stop()
        assert lookalike.poll() is None
    finally:
        for process in (holder, lookalike):
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

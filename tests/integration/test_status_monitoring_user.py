"""`agent status` run by a monitoring user (Nagios as `nobody`) against root's bridge.

Under systemd (``UMask=0077``) a bridge's pid file is 0600 and belongs to the
bridge's user; the status files are 0644 on purpose, for monitoring. Real
parts: the agent command run through setpriv as ``nobody``, a pid file held
with the bridge's own ``hold_pid_file`` by this (root) process, a status file
written by the bridge's own ``StatusFile``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.bridge.pidfile import hold_pid_file
from edgeagent.bridge.status_file import CLOUD_LINK, LOCAL_LINK, StatusFile
from tests.support.agent_cli import AGENT, exit_code, run_agent

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root + setpriv"
    ),
]

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.fixture
def config_dir() -> Iterator[Path]:
    """A configuration ``nobody`` can read (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="edgeagent-monitor-") as name:
        base = Path(name)
        base.chmod(0o755)
        config = base / "etc-agent"
        for key, value in (
            ("c8y.url", "localhost:8883"),
            ("run.path", str(base / "run")),
            ("logs.path", str(base / "log")),
        ):
            done = run_agent("config", "set", key, value, config_dir=config)
            assert done.returncode == 0, done.stderr
        (base / "run").mkdir(mode=0o755)
        yield config


def status_as_nobody(config_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update(AGENT_CONFIG_DIR=str(config_dir), HOME="/nonexistent")
    return subprocess.run(
        [*AS_NOBODY, str(AGENT), "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_a_live_bridge_with_a_private_pid_file_is_seen_running(config_dir: Path) -> None:
    run = config_dir.parent / "run"
    pid_file = run / "bridge-c8y.pid"
    status = StatusFile(run / "status-c8y.json", "c8y", "device-001", "pkcs11:object=k")
    with hold_pid_file(pid_file):
        pid_file.chmod(0o600)  # as systemd's UMask=0077 makes it
        status.link_up(CLOUD_LINK)
        status.link_up(LOCAL_LINK)
        done = status_as_nobody(config_dir)
        assert pid_file.exists()  # a live bridge's pid file: never removed
    assert done.returncode == 0, done.stdout + done.stderr
    c8y = next(c for c in json.loads(done.stdout)["clouds"] if c["cloud"] == "c8y")
    assert c8y["up"] is True
    assert c8y["bridge"]["running"] is True and c8y["bridge"]["pid"] == os.getpid()


def test_a_stale_private_pid_file_is_a_bridge_not_running(config_dir: Path) -> None:
    run = config_dir.parent / "run"
    pid_file = run / "bridge-c8y.pid"
    pid_file.write_text("999999\n")  # its bridge died: nobody holds the lock
    pid_file.chmod(0o600)
    done = status_as_nobody(config_dir)
    assert done.returncode == exit_code(errors.BridgeNotRunning), done.stdout + done.stderr
    c8y = next(c for c in json.loads(done.stdout)["clouds"] if c["cloud"] == "c8y")
    assert c8y["bridge"]["running"] is False
    assert "rm " not in done.stderr and "pid file" not in done.stderr

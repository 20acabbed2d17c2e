"""`agent bridge run --host --join` (systemd: the unit is the host) only asks the host."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edgeagent.cli import bridge_runtime


def test_a_join_child_never_writes_into_the_log_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """L6: as root it created bridge-host.log in the unit user's /var/log/agent."""
    asked: list[Any] = []

    def start_in_host(plan: Any, run_dir: Path, log_dir: Path | None, *rest: Any, **kw: Any) -> int:
        asked.append((log_dir, kw))
        report = rest[2]
        report({"ok": True, "pid": 1, "cloud": "c8y"})
        return 0

    monkeypatch.setattr("edgeagent.bridge.host_start.start_in_host", start_in_host)
    monkeypatch.setattr(
        "edgeagent.bridge.runtime.read_plan", lambda fd: SimpleNamespace(cloud="c8y")
    )
    monkeypatch.setattr("edgeagent.lean_exec.stop_on_signals", threading.Event)
    monkeypatch.setattr("edgeagent.lean_exec.keep_secrets_out_of_dumps", lambda: None)
    monkeypatch.setattr("edgeagent.bridge.logs.log_to_stream", lambda stream: None)
    # Never dup2 over this test process's stdio, even if the fix regresses.
    let_go: list[Path] = []
    monkeypatch.setattr(bridge_runtime, "_let_go_of_stdio", let_go.append)
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    argv = ["--payload-fd", "0", "--host", str(tmp_path), "--log-dir", str(log_dir), "--join"]
    assert bridge_runtime.main(argv) == 0
    assert asked == [(None, {"may_host": False, "op": "start"})]
    assert let_go == [] and list(log_dir.iterdir()) == []
    assert '"ok": true' in capsys.readouterr().out
    # N3: `agent reconnect` asks the host to restart the cloud, in one request.
    assert bridge_runtime.main([*argv, "--restart"]) == 0
    assert asked[-1] == (None, {"may_host": False, "op": "restart"})

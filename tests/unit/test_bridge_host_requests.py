"""The bridge host's control loop: requests answered side by side, a start nobody waits for.

Real sockets and threads; the clouds are stand-ins (no token, no broker).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from edgeagent.bridge import control, host
from edgeagent.bridge.host import BridgeHost, CloudRun, control_socket
from edgeagent.bridge.plan import BridgePlan
from edgeagent.cli.exit_codes import exit_code_for


class SlowHost(BridgeHost):
    """Answers {"op": "slow"} after ``release`` is set, as a start on a slow token does."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, None, exit_code_for)
        self.entered = threading.Event()
        self.release = threading.Event()

    def answer(self, body: bytes) -> dict[str, Any]:
        if json.loads(body)["op"] == "slow":
            self.entered.set()
            self.release.wait(10)
            return control.ok_reply(pid=0)
        return super().answer(body)


def _stand_in_cloud(run_dir: Path, cloud: str) -> CloudRun:
    """A running cloud whose thread only waits for its stop."""
    run = CloudRun(cast(BridgePlan, SimpleNamespace(cloud=cloud)), run_dir / "x.pid", None)
    run.thread = threading.Thread(target=run.stop.wait, daemon=True)
    run.thread.start()
    return run


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[SlowHost]:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    bridge_host = SlowHost(run_dir)
    bridge_host.clouds["c8y"] = _stand_in_cloud(run_dir, "c8y")
    stop = threading.Event()
    with control_socket(run_dir) as listener:
        server = threading.Thread(target=bridge_host.serve, args=(listener, stop), daemon=True)
        server.start()
        yield bridge_host
        bridge_host.release.set()
        stop.set()
        server.join(10)


def test_a_request_is_answered_while_another_cloud_s_start_is_slow(serving: SlowHost) -> None:
    """M1: one thread per connection; no request waits in a queue behind another."""
    run_dir = serving.run_dir
    slow = threading.Thread(target=control.request, args=(run_dir, {"op": "slow"}, 15))
    slow.start()
    try:
        assert serving.entered.wait(10)
        listing = control.request(run_dir, {"op": "list"}, 15)
        assert listing["ok"] and "c8y" in listing["clouds"]
        assert slow.is_alive(), "list was answered only after the slow request"
    finally:
        serving.release.set()
        slow.join(10)


def test_the_timeouts_nest(monkeypatch: pytest.MonkeyPatch) -> None:
    """M1/L9: every waiter waits longer than what it waits for."""
    from edgeagent.bridge import timeouts

    assert timeouts.CLOUD_START < timeouts.CONTROL_START
    assert timeouts.JOIN + timeouts.CONTROL_START < timeouts.RUN_START
    assert timeouts.CLOUD_STOP < timeouts.CONTROL_STOP


def test_a_host_whose_starter_gave_up_serves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M1 C: the reply's pipe is closed (the caller timed out): the host and its cloud live on."""
    served: list[str] = []
    monkeypatch.setattr(
        BridgeHost, "start", lambda self, plan: control.ok_reply(pid=0, cloud=plan.cloud)
    )
    monkeypatch.setattr(BridgeHost, "serve", lambda self, listener, stop: served.append("yes"))

    def report(reply: dict[str, Any]) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    plan = cast(BridgePlan, SimpleNamespace(cloud="c8y"))
    code = host._be_host(plan, run_dir, None, threading.Event(), exit_code_for, report)
    assert (code, served) == (0, ["yes"])

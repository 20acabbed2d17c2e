"""doctor's "bridge running" check: which clouds it holds to running.

Under systemd every connected cloud runs in the one agent-bridge.service, so
the unit being enabled says nothing of a given cloud; connected-clouds does.
systemd is not in this container: systemctl's answers are given (every unit
enabled, no main pid), the pid files and status files are real (none here).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.bridge import connected
from edgeagent.bridge.service import BridgeService
from edgeagent.clouds.local_checks import bridge_runs
from edgeagent.clouds.registry import cloud_profile
from edgeagent.config import AgentConfig


class Skipped(Exception):
    pass


@pytest.fixture
def under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    def systemctl(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert args[0] == "systemctl", args
        return subprocess.CompletedProcess(args, 0, stdout="0\n", stderr="")

    monkeypatch.setattr(subprocess, "run", systemctl)
    monkeypatch.setattr(BridgeService, "manager", property(lambda _: "systemd"))


@pytest.mark.usefixtures("under_systemd")
def test_a_cloud_never_connected_is_not_checked_while_another_keeps_the_unit(
    tmp_path: Path,
) -> None:
    config = AgentConfig.model_validate(
        {
            "c8y": {"url": "example.cumulocity.com"},
            "az": {"url": "hub.azure-devices.net"},
            "run": {"path": str(tmp_path / "run")},
            "logs": {"path": str(tmp_path / "log")},
        }
    )
    connected.add(tmp_path, "c8y")  # c8y keeps agent-bridge.service enabled
    az = cloud_profile("az", config, tmp_path)
    with pytest.raises(Skipped) as skipped:
        bridge_runs(tmp_path, config, az, skip=Skipped)
    assert "has never run here: `agent connect az` starts it" in str(skipped.value)

    # c8y is connected (meant to run) and does not: that is a failure.
    c8y = cloud_profile("c8y", config, tmp_path)
    with pytest.raises(errors.BridgeNotRunning) as caught:
        bridge_runs(tmp_path, config, c8y, skip=Skipped)
    assert caught.value.fix == (
        "agent connect c8y   (the bridge's log: journalctl -u agent-bridge.service)"
    )

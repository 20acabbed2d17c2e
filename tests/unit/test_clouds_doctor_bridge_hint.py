"""doctor's "bridge connection" check under systemd: its fix names the journal.

The bridge host under systemd logs to the journal, never to
logs.path/bridge-<cloud>.log. systemd is not in this container: the unit's
answers are given (the bridge runs), and so is the health the bridge last
published (none; down with no error of ours).
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

import pytest

from edgeagent import errors
from edgeagent.bridge.health import Health, down
from edgeagent.bridge.service import BridgeService
from edgeagent.clouds import doctor
from edgeagent.clouds.registry import cloud_profile
from edgeagent.config import AgentConfig


class _Watcher:
    """What the bridge last published on its health topic."""

    last: Health | None = None

    def __init__(self, *_args: object) -> None: ...

    def __enter__(self) -> _Watcher:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None: ...

    def current(self) -> Health | None:
        return self.last


@pytest.mark.parametrize("last", [None, down("connection lost: reset by peer")])
def test_under_systemd_the_fix_is_the_units_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, last: Health | None
) -> None:
    monkeypatch.setattr(BridgeService, "manager", property(lambda _: "systemd"))
    monkeypatch.setattr(BridgeService, "running_pid", lambda _: 4321)
    monkeypatch.setattr(_Watcher, "last", last)
    monkeypatch.setattr(doctor, "HealthWatcher", _Watcher)
    config = AgentConfig.model_validate({"c8y": {"url": "example.cumulocity.com"}})
    state = doctor._State(tmp_path, "c8y", config, cloud_profile("c8y", config, tmp_path))
    started = time.monotonic()
    with pytest.raises(errors.ServiceError) as caught:
        doctor._bridge_connection(state)
    assert time.monotonic() - started < 5
    assert caught.value.fix == "see journalctl -u agent-bridge.service"

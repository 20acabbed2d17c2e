"""connect's wait for the started bridge: its CONNACK, or the error it reports, at once.

The watcher's decisions on the health messages it got (no broker: the
messages are handed to it as paho would).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edgeagent import errors
from edgeagent.bridge.health import Health, down, up
from edgeagent.bridge.service import BridgeService
from edgeagent.clouds.health_watch import HealthWatcher
from edgeagent.clouds.registry import cloud_profile
from edgeagent.config import AgentConfig


class _Running:
    """The bridge service, as far as the wait asks it."""

    log_hint = "/var/log/agent/bridge-c8y.log"

    def is_running(self) -> bool:
        return True

    def log_tail(self) -> str:
        return ""


def _watcher(tmp_path: Path, *messages: Health) -> HealthWatcher:
    config = AgentConfig.model_validate({"c8y": {"url": "example.cumulocity.com"}})
    watcher = HealthWatcher(config, cloud_profile("c8y", config, tmp_path))
    for health in messages:
        message = mqtt.MQTTMessage(topic=b"agent/bridge/c8y/health")
        message.payload = health.to_json()
        watcher._on_message(watcher._client, None, message)
    return watcher


REFUSED = errors.DeviceCertificateRefused("the cloud refused the device", "register it")


def test_up_after_the_start_is_connected(tmp_path: Path) -> None:
    since = time.time() - 1
    _watcher(tmp_path, up()).wait_up(_Running(), since, timeout=0.5)  # type: ignore[arg-type]


def test_the_started_bridges_error_is_raised_at_once_with_its_class(tmp_path: Path) -> None:
    since = time.time() - 1
    watcher = _watcher(tmp_path, down("not connected yet"), down("x", REFUSED))
    started = time.monotonic()
    with pytest.raises(errors.DeviceCertificateRefused) as caught:
        watcher.wait_up(_Running(), since, timeout=30)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5  # not the timeout
    assert (caught.value.cause, caught.value.fix) == ("the cloud refused the device", "register it")


def test_an_earlier_bridges_messages_are_not_this_ones(tmp_path: Path) -> None:
    stale_up = Health("up", time.time() - 60)
    stale_refusal = Health("down", time.time() - 30, "old", "DeviceCertificateRefused", "old")
    watcher = _watcher(tmp_path, stale_up, stale_refusal)
    with pytest.raises(errors.ServiceError) as caught:
        watcher.wait_up(_Running(), time.time(), timeout=0.3)  # type: ignore[arg-type]
    assert "did not report Cumulocity connected within 0 s (last: no status)" in caught.value.cause


def test_an_unreachable_cloud_is_waited_for_then_is_the_error(tmp_path: Path) -> None:
    away = errors.BrokerUnreachable("c8y broker example:8883 is unreachable: timed out", "check")
    watcher = _watcher(tmp_path, down("x", away))
    started = time.monotonic()
    with pytest.raises(errors.BrokerUnreachable):
        watcher.wait_up(_Running(), time.time() - 1, timeout=0.6)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.6  # it waited: the next attempt may get through


@dataclass(frozen=True)
class _StoppedUnderSystemd(BridgeService):
    """The bridge host under systemd (not in this container): its answers, given."""

    @property
    def manager(self) -> str:  # type: ignore[override]
        return "systemd"

    def running_pid(self) -> int | None:
        return None  # the bridge stopped


def test_under_systemd_a_stopped_bridge_points_at_the_journal(tmp_path: Path) -> None:
    """The host logs to the journal: no "(no log)" from a log file it never writes."""
    service = _StoppedUnderSystemd("c8y", tmp_path, tmp_path / "run", tmp_path / "log")
    watcher = _watcher(tmp_path, down("not connected yet"))
    with pytest.raises(errors.ServiceError) as caught:
        watcher.wait_up(service, time.time() - 1, timeout=5)
    assert caught.value.cause == "the c8y bridge stopped (its log is in the journal)"
    assert caught.value.fix == "see journalctl -u agent-bridge.service"
    # The same wait elsewhere shows this start's log lines.
    detached = BridgeService("c8y", tmp_path, tmp_path / "run", tmp_path / "log")
    with pytest.raises(errors.ServiceError) as caught:
        watcher.wait_up(detached, time.time() - 1, timeout=5)
    assert caught.value.cause == "the bridge stopped:\n(no log)"
    assert caught.value.fix == f"see {tmp_path / 'log' / 'bridge-c8y.log'}"

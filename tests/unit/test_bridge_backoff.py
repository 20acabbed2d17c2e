"""The bridge's reconnect back-off: doubles per failed connect, back to the minimum at CONNACK.

Driven through the bridge's own outcome handlers (no network, no timing):
the delays are the ones the bridge logs and schedules.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

import pytest

from edgeagent.bridge.bridge import Bridge
from edgeagent.bridge.broker_link import MIN_BACKOFF
from edgeagent.bridge.rule import BridgeRule
from edgeagent.bridge.rules import TopicRules
from edgeagent.errors import BrokerUnreachable
from edgeagent.mqtt import packets as p
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.mqtt.session import Opened
from tests.support.fake_socket import FakeSocket

RULES = TopicRules([BridgeRule("out", "c8y/", "", "s/us"), BridgeRule("in", "c8y/", "", "s/ds")])


class _Selector:
    """The loop's selector, as far as the outcome handlers use it."""

    def register(self, *_args: Any) -> None: ...

    def modify(self, *_args: Any) -> None: ...

    def unregister(self, *_args: Any) -> None: ...


class _Finished:
    """A BackgroundConnect that has ended with ``outcome``."""

    done = True

    def __init__(self, outcome: object) -> None:
        self.outcome = outcome


class CloudLink:
    def __init__(self) -> None:
        local = Endpoint("local", "127.0.0.1", 1, "bridge")
        cloud = Endpoint("c8y", "127.0.0.1", 2, "device-001")
        self.bridge = Bridge(local, cloud, RULES, "agent/bridge/c8y/health")
        self.side = self.bridge._cloud_side
        self.attempts = 0

    def connack(self) -> None:
        self.attempts += 1
        self.side.connecting = _Finished(Opened(FakeSocket(), False, p.PacketReader()))  # type: ignore[assignment]
        self.bridge._connected(self.side, _Selector())  # type: ignore[arg-type]
        assert self.bridge.cloud.up

    def refused(self) -> None:
        self.attempts += 1
        error = BrokerUnreachable("c8y broker 127.0.0.1:2 is unreachable: Connection refused")
        self.side.connecting = _Finished(error)  # type: ignore[assignment]
        self.bridge._connected(self.side, _Selector())  # type: ignore[arg-type]
        assert not self.bridge.cloud.up

    def outage(self) -> None:
        self.bridge._drop(self.side, "ConnectionResetError: reset by peer")
        assert not self.bridge.cloud.up


def _delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The delays the bridge announced for the cloud link, in order."""
    found = []
    for record in caplog.records:
        match = re.search(r"retry in (\d+) s", record.getMessage())
        if record.getMessage().startswith("c8y broker down") and match:
            found.append(float(match.group(1)))
    return found


def test_two_outages_close_together_the_second_is_retried_at_the_minimum(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "uniform", lambda _a, _b: 1.0)  # no jitter
    caplog.set_level(logging.WARNING, logger="edgeagent.bridge")
    link = CloudLink()
    link.connack()
    link.outage()  # the first outage: the cloud is away for three attempts
    link.refused()
    link.refused()
    link.refused()
    link.connack()  # back, then gone again within the same second
    link.outage()

    assert link.attempts == 5
    assert _delays(caplog) == [1, 2, 4, 8, MIN_BACKOFF]
    # What the bridge schedules is that delay (jitter off), not only what it logs.
    assert link.side.retry_at - time.monotonic() <= MIN_BACKOFF


def test_failed_connects_back_off_up_to_the_maximum(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "uniform", lambda _a, _b: 1.0)
    caplog.set_level(logging.WARNING, logger="edgeagent.bridge")
    link = CloudLink()
    for _ in range(9):
        link.refused()
    assert _delays(caplog) == [1, 2, 4, 8, 16, 32, 60, 60, 60]

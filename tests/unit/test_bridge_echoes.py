"""Both-way rules: the bridge recognises its own messages coming back (pure logic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent.bridge import echoes as echoes_module
from edgeagent.bridge.echoes import ExpectedEchoes
from edgeagent.bridge.rules import TopicRules

AWS_RULES = Path(__file__).resolve().parents[2] / "edgeagent" / "clouds" / "rules" / "aws.toml"
SHADOW_LOCAL = "aws/shadow/update/delta"
SHADOW_REMOTE = "$aws/things/dev-1/shadow/update/delta"
LOCAL, CLOUD = True, False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(echoes_module.time, "monotonic", fake)
    return fake


def aws_echoes(window: float = 30.0, limit: int = 1000) -> ExpectedEchoes:
    rules = TopicRules.load(AWS_RULES, device_id="dev-1")
    assert rules.may_echo
    return ExpectedEchoes(rules, window=window, limit=limit)


def test_a_message_sent_to_local_is_expected_back_from_local_once(clock: Clock) -> None:
    echoes = aws_echoes()
    echoes.sent(LOCAL, SHADOW_REMOTE, SHADOW_LOCAL, b"{}", side_up=True)
    assert not echoes.is_echo(CLOUD, SHADOW_LOCAL, b"{}")  # wrong side
    assert not echoes.is_echo(LOCAL, SHADOW_LOCAL, b"{ }")  # another payload
    assert not echoes.is_echo(LOCAL, "aws/shadow/update", b"{}")  # another topic
    assert echoes.is_echo(LOCAL, SHADOW_LOCAL, b"{}")
    assert not echoes.is_echo(LOCAL, SHADOW_LOCAL, b"{}")  # a second copy is a new message
    assert echoes.dropped == 1


def test_a_message_sent_to_the_cloud_is_expected_back_from_the_cloud(clock: Clock) -> None:
    echoes = aws_echoes()
    echoes.sent(CLOUD, "aws/shadow/update", "$aws/things/dev-1/shadow/update", b"u", side_up=True)
    assert echoes.waiting(CLOUD) == 1
    assert echoes.waiting(LOCAL) == 0
    assert echoes.is_echo(CLOUD, "$aws/things/dev-1/shadow/update", b"u")
    assert echoes.waiting(CLOUD) == 0


def test_each_copy_sent_cancels_one_copy_back(clock: Clock) -> None:
    echoes = aws_echoes()
    for _ in range(3):
        echoes.sent(LOCAL, SHADOW_REMOTE, SHADOW_LOCAL, b"same", side_up=True)
    assert [echoes.is_echo(LOCAL, SHADOW_LOCAL, b"same") for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]


def test_a_rename_is_not_an_echo(clock: Clock) -> None:
    # AWS echoes test-connection; the bridge must forward that echo locally
    # as aws/connection-success: it does not map back to where it came from.
    echoes = aws_echoes()
    remote = "thinedge/devices/dev-1/test-connection"
    echoes.sent(CLOUD, "aws/test-connection", remote, b"ping", side_up=True)
    assert echoes.waiting(CLOUD) == 0
    assert not echoes.is_echo(CLOUD, remote, b"ping")


def test_one_way_rules_are_never_remembered(clock: Clock) -> None:
    echoes = aws_echoes()
    echoes.sent(CLOUD, "aws/td/t", "thinedge/dev-1/td/t", b"1", side_up=True)
    echoes.sent(LOCAL, "thinedge/dev-1/cmd/c", "aws/cmd/c", b"2", side_up=True)
    assert echoes.waiting(CLOUD) == echoes.waiting(LOCAL) == 0


def test_an_echo_that_never_comes_expires(clock: Clock) -> None:
    echoes = aws_echoes(window=30.0)
    echoes.sent(LOCAL, SHADOW_REMOTE, SHADOW_LOCAL, b"old", side_up=True)
    clock.now += 29.0
    echoes.sent(LOCAL, SHADOW_REMOTE, SHADOW_LOCAL, b"new", side_up=True)
    clock.now += 1.5
    # A genuine message with the first payload, after the window: forwarded.
    assert not echoes.is_echo(LOCAL, SHADOW_LOCAL, b"old")
    assert echoes.is_echo(LOCAL, SHADOW_LOCAL, b"new")
    assert echoes.waiting(LOCAL) == 0


def test_at_most_limit_echoes_are_kept_per_side(clock: Clock) -> None:
    echoes = aws_echoes(limit=3)
    for i in range(5):
        echoes.sent(LOCAL, SHADOW_REMOTE, SHADOW_LOCAL, b"%d" % i, side_up=True)
    assert echoes.waiting(LOCAL) == 3
    assert [echoes.is_echo(LOCAL, SHADOW_LOCAL, b"%d" % i) for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_echoes_taken_out_of_order_leave_nothing_behind(clock: Clock) -> None:
    echoes = aws_echoes(limit=10)
    for payload in (b"a", b"b", b"a", b"c"):
        echoes.sent(LOCAL, SHADOW_REMOTE, SHADOW_LOCAL, payload, side_up=True)
    for payload in (b"c", b"a", b"b"):
        assert echoes.is_echo(LOCAL, SHADOW_LOCAL, payload)
    assert echoes.waiting(LOCAL) == 1
    clock.now += 60
    assert not echoes.is_echo(LOCAL, SHADOW_LOCAL, b"a")
    assert echoes.waiting(LOCAL) == 0


def test_a_message_queued_for_a_side_that_is_down_waits_for_that_side(clock: Clock) -> None:
    echoes = aws_echoes(window=30.0)
    echoes.sent(CLOUD, "aws/shadow/update", "$aws/things/dev-1/shadow/update", b"q", side_up=False)
    clock.now += 600  # a ten-minute outage
    # The cloud is back and delivers something else first: the clock starts now.
    assert not echoes.is_echo(CLOUD, "thinedge/dev-1/cmd/x", b"other")
    clock.now += 29
    assert echoes.is_echo(CLOUD, "$aws/things/dev-1/shadow/update", b"q")


def test_a_queued_message_whose_echo_never_comes_still_expires(clock: Clock) -> None:
    echoes = aws_echoes(window=30.0)
    echoes.sent(CLOUD, "aws/shadow/update", "$aws/things/dev-1/shadow/update", b"q", side_up=False)
    clock.now += 600
    assert not echoes.is_echo(CLOUD, "thinedge/dev-1/cmd/x", b"other")
    clock.now += 31
    assert not echoes.is_echo(CLOUD, "$aws/things/dev-1/shadow/update", b"q")
    assert echoes.waiting(CLOUD) == 0

"""The bridge's repeated-warning aggregator (pure logic: a fake clock, a real logger)."""

from __future__ import annotations

import logging

import pytest

from edgeagent.bridge.repeated_warnings import RepeatedWarnings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_once_per_topic_per_interval_then_a_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    warnings = RepeatedWarnings(logging.getLogger("t"), interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            warnings.warn("a", "no rule for %r", "a")
            warnings.warn("b", "no rule for %r", "b")
        clock.now += 10.0
        warnings.tick(clock.now)
    assert _lines(caplog) == [
        "no rule for 'a'",
        "no rule for 'b'",
        "no rule for 'a' (999 more in the last 10 s)",
        "no rule for 'b' (999 more in the last 10 s)",
    ]


def test_a_new_interval_logs_the_first_again(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    warnings = RepeatedWarnings(logging.getLogger("t"), interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING):
        warnings.warn("a", "x")
        clock.now += 11
        warnings.warn("a", "x")
        warnings.flush()
    assert _lines(caplog) == ["x", "x"]


def test_ever_new_topics_cost_a_bounded_number_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    warnings = RepeatedWarnings(logging.getLogger("t"), max_keys=5, clock=clock)
    with caplog.at_level(logging.WARNING):
        for i in range(10_000):
            warnings.warn(i, "topic %d", i)
        clock.now += 3
        warnings.flush()
    assert _lines(caplog) == [
        *(f"topic {i}" for i in range(5)),
        "9995 more warnings like these, on other topics, in the last 3 s",
    ]

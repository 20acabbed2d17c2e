"""The signing service's refusal log: one line per uid per interval, with a count."""

from __future__ import annotations

import logging

import pytest

from edgeagent.p11server.refusals import RefusalLog


def test_a_flood_of_refusals_is_one_line_per_uid_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    refusals = RefusalLog(logging.getLogger("test.refusals"), interval=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        written = [refusals.note(65534, "refused peer uid=65534") for _ in range(5000)]
        assert refusals.note(1000, "refused peer uid=1000")  # another uid has its own line
        now[0] += 61
        assert refusals.note(65534, "refused peer uid=65534")
    assert written.count(True) == 1
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "refused peer uid=65534",
        "refused peer uid=1000",
        "refused peer uid=65534 (and 4999 more refusals of uid 65534 in the last 61 s, not logged)",
    ]

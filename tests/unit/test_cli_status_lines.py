"""How `agent status` prints a link: an error from before the link came up is history."""

from __future__ import annotations

from edgeagent.bridge.status_file import LinkStatus
from edgeagent.cli.status_cmd import link_line


def test_an_error_before_the_link_came_up_reads_as_recovered() -> None:
    line = link_line(LinkStatus(up=True, since=200.0, last_error="refused", last_error_at=100.0))
    assert line.startswith("up since ")
    assert "; recovered from an error at " in line and "last error" not in line
    assert line.endswith(": refused")


def test_a_down_link_shows_its_last_error() -> None:
    line = link_line(LinkStatus(up=False, since=100.0, last_error="refused", last_error_at=100.0))
    assert line.startswith("down since ")
    assert "; last error at " in line and line.endswith(": refused")


def test_an_up_link_without_an_error_says_only_since() -> None:
    assert "error" not in link_line(LinkStatus(up=True, since=100.0))

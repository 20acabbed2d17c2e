"""What the bridge tells `agent status`, and when: its link changes at once, its counters paced.

    feed = StatusFeed(sink, bridge.counters)   # sink: a status_file.StatusFile, or None
    feed.moved = True                          # a message or an ack: the counters changed
    feed.tick(time.monotonic())                # each turn of the loop: the counters, when due
    feed.wait(now)                             # how long the loop may sleep for them, or None
    feed.link_up("cloud"); feed.link_down("local", "connection lost: ...")
    feed.stopped(counters)                     # the last word, at the bridge's stop

The sink is called from the bridge's thread only. Without a sink (tests, the
benchmarks) every call is a no-op, so the bridge never asks whether it has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from edgeagent.bridge.status_file import Counters, Dropped, EachWay

STATUS_EVERY = 0.5
"""Hand the counters to the sink at most this often (seconds) while they move:
`agent status` right after a message shows it; a write costs ~0.2 ms (JSON,
temp file, rename: measured), so two a second are 0.05 % of a core. Idle, every
``STATUS_IDLE`` seconds (the sink writes only at its heartbeat)."""
STATUS_IDLE = 5.0


class StatusSink(Protocol):
    """Told what the bridge does, for `agent status` (``status_file.StatusFile``).

    ``link`` is ``"cloud"`` or ``"local"``. Called from the bridge's thread.
    """

    def link_up(self, link: str) -> None: ...

    def link_down(self, link: str, error: str) -> None: ...

    def counters(self, counters: Counters) -> None: ...

    def stopped(self, counters: Counters) -> None: ...


class SessionCounts(Protocol):
    """What a broker session counts (``mqtt.session.MqttSession``)."""

    @property
    def backlog(self) -> int: ...

    @property
    def dropped_qos0(self) -> int: ...


def bridge_counters(
    forwarded: Mapping[str, int],
    dropped_oversize: int,
    dropped_no_rule: int,
    cloud: SessionCounts,
    local: SessionCounts,
) -> Counters:
    """Forwarded and dropped since start, and in flight now."""
    return Counters(
        forwarded=EachWay(forwarded["outbound"], forwarded["inbound"]),
        in_flight=EachWay(cloud.backlog, local.backlog),
        dropped=Dropped(
            oversize=dropped_oversize,
            no_rule=dropped_no_rule,
            qos0_link_down=cloud.dropped_qos0 + local.dropped_qos0,
        ),
    )


class StatusFeed:
    """Paces what the bridge hands its ``StatusSink``."""

    # Set per forwarded message: a plain attribute, not a method call.
    __slots__ = ("_counters", "_due", "_sink", "moved")

    def __init__(self, sink: StatusSink | None, counters: Callable[[], Counters]) -> None:
        self._sink = sink
        self._counters = counters
        self._due = 0.0  # monotonic: the sink gets the counters from then on
        self.moved = True  # a message or an ack since the last counters (at start: the file)

    def tick(self, now: float) -> None:
        """The counters, if they moved and STATUS_EVERY has passed, or STATUS_IDLE has."""
        if (
            self._sink is not None
            and now >= self._due
            and (self.moved or now >= self._due + STATUS_IDLE)
        ):
            self.moved = False
            self._due = now + STATUS_EVERY
            self._sink.counters(self._counters())

    def wait(self, now: float) -> float | None:
        """Seconds until moved counters are due (the loop wakes for them); None if none moved."""
        if self.moved and self._sink is not None:
            return self._due - now
        return None

    def link_up(self, link: str) -> None:
        if self._sink is not None:
            self._sink.link_up(link)

    def link_down(self, link: str, error: str) -> None:
        if self._sink is not None:
            self._sink.link_down(link, error)

    def stopped(self, counters: Counters) -> None:
        if self._sink is not None:
            self._sink.stopped(counters)

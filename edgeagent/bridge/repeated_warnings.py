"""Warnings a peer can trigger at will, logged once per topic per interval with a count.

    warnings = RepeatedWarnings(log)
    warnings.warn(("inbound", topic), "no %s rule for topic %r; dropped", "inbound", topic)
    warnings.tick(now)      # from the event loop: reports the repeats once the interval is over
    warnings.flush()        # at shutdown

A cloud (or a local client) that sends 50,000 messages on topics outside the
rules must not write 50,000 log lines: the first warning for a key is logged
at once, its repeats are counted and reported as one line at the end of the
interval ("... (4999 more in the last 10 s)"). The number of keys tracked per
interval is bounded too, so a flood over ever-new topics costs a bounded
number of lines and a bounded amount of memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

INTERVAL = 10.0
MAX_KEYS = 20


@dataclass(slots=True)
class _Seen:
    message: str
    args: tuple[object, ...]
    repeats: int = 0


class RepeatedWarnings:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = INTERVAL,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._started = clock()
        self._seen: dict[Hashable, _Seen] = {}
        self._others = 0
        """Warnings past ``max_keys`` distinct keys in this interval."""

    def warn(self, key: Hashable, message: str, *args: object) -> None:
        """Log ``message % args`` unless ``key`` was warned about in this interval: count it."""
        self.tick(self._clock())
        seen = self._seen.get(key)
        if seen is not None:
            seen.repeats += 1
        elif len(self._seen) >= self._max_keys:
            self._others += 1
        else:
            self._seen[key] = _Seen(message, args)
            self._log.warning(message, *args)

    def tick(self, now: float) -> None:
        """Report the interval's repeats once it is over (cheap when it is not)."""
        if now - self._started >= self._interval:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Report the repeats counted so far and start a new interval."""
        now = self._clock() if now is None else now
        elapsed = max(now - self._started, 0.0)
        for seen in self._seen.values():
            if seen.repeats:
                self._log.warning(
                    seen.message + " (%d more in the last %.0f s)",
                    *seen.args,
                    seen.repeats,
                    elapsed,
                )
        if self._others:
            self._log.warning(
                "%d more warnings like these, on other topics, in the last %.0f s",
                self._others,
                elapsed,
            )
        self._seen.clear()
        self._others = 0
        self._started = now

"""Refusal lines in the signing service's log, at most one per uid per interval.

    refusals = RefusalLog(log, interval=60.0)
    refusals.note(peer.uid, "refused peer uid=7 ...")   # logs now, or counts for later

A refused user can connect thousands of times a second; one WARNING per
refusal would let it fill the disk (21,648 lines in 15 s were seen). The
first refusal of a uid is logged at once; later ones within ``interval`` are
counted, and the next line that uid earns says how many were left out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

MAX_TRACKED_UIDS = 1024  # a bound on memory, whatever uids connect


class RefusalLog:
    def __init__(
        self,
        log: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # uid -> (when its last line was logged, refusals not logged since)
        self._last: dict[int, tuple[float, int]] = {}

    def note(self, uid: int, what: str) -> bool:
        """Count one refusal of ``uid``; True when it was written to the log."""
        now = self._clock()
        with self._lock:
            logged_at, held_back = self._last.get(uid, (None, 0))
            if logged_at is not None and now - logged_at < self._interval:
                self._last[uid] = (logged_at, held_back + 1)
                return False
            if len(self._last) >= MAX_TRACKED_UIDS:
                self._last.clear()
            self._last[uid] = (now, 0)
        if held_back:
            self._log.warning(
                "%s (and %d more refusals of uid %d in the last %.0f s, not logged)",
                what,
                held_back,
                uid,
                now - logged_at if logged_at is not None else 0.0,
            )
        else:
            self._log.warning("%s", what)
        return True

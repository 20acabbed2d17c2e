"""One deadline for a whole blocking exchange, not one per read.

    with Watchdog(sock, seconds) as dog:
        conn.handshakeClientCert(...)       # many blocking reads
    if dog.fired: ...                       # it was cut off at the deadline

A socket timeout bounds each read alone: a peer that trickles a byte every
few seconds keeps every read short and the exchange going forever. tlslite's
handshake does many reads we cannot reach between, so a timer shuts the
socket down when the time is up; the blocked read then returns, the
handshake fails, and ``fired`` tells the caller that it was the deadline.
``shutdown`` from another thread is the one way to wake a blocked ``recv``
on Linux; a timer thread per connect attempt costs nothing next to a TLS
handshake.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class Watchdog:
    """Shut ``sock`` down after ``seconds`` unless the ``with`` block ended first."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._done = False
        self.fired = False
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

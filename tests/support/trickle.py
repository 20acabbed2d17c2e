"""A cloud that accepts TCP, then trickles a byte every few seconds: the slow-cloud attack.

    with TrickleServer(interval=1.0, lifetime=20.0) as cloud:
        gw.set("c8y.url", f"localhost:{cloud.port}")

Every connection gets the start of a TLS handshake record, one byte per
``interval``: each read the client makes is answered long before a per-read
timeout, but the handshake never completes. Bounded in time: each
connection is closed after ``lifetime`` seconds, and the server stops with
the ``with`` block. ``data`` trickles something else (an MQTT CONNACK that
never ends, for a plain-TCP broker).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from tests.support.ports import LOOPBACK

# A TLS handshake record header (type 22, TLS 1.2, 16 KiB), then its body: never complete.
TLS_RECORD_START = b"\x16\x03\x03\x40\x00" + b"\x02" * 64


class TrickleServer:
    def __init__(
        self, interval: float = 1.0, lifetime: float = 20.0, data: bytes = TLS_RECORD_START
    ) -> None:
        self.data = data
        self.interval = interval
        self.lifetime = lifetime
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connections = 0

    def __enter__(self) -> TrickleServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=self.interval + 2)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            for i in range(int(self.lifetime / self.interval)):
                if self._stop.wait(self.interval):
                    return
                try:
                    conn.sendall(self.data[i % len(self.data) :][:1])
                except OSError:
                    return

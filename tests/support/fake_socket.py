"""A socket for unit tests of the MQTT session's pure protocol logic (no network)."""

from __future__ import annotations

from typing import Any

from edgeagent.mqtt import packets as p


class FakeSocket:
    """Collects what a session sends; hands it what the test queues."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.inbox: list[bytes] = []

    def send(self, data: Any) -> int:
        self.sent += bytes(data)
        return len(data)

    def recv(self, _size: int) -> bytes:
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.pop(0)

    def close(self) -> None:
        pass

    def packets(self) -> list[tuple[int, int, bytes]]:
        """The packets sent since the last call, parsed."""
        out = list(p.PacketReader().feed(bytes(self.sent)))
        self.sent.clear()
        return out

"""The client side of the signing socket against a service that misbehaves."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.protocol import messages as m
from edgeagent.protocol.frame import FrameStream, PeerClosed
from edgeagent.signing.service_connection import ServiceConnection


class StallingService:
    """Answers hello and the first request; sends half of the second answer, then nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            stream = FrameStream(conn, idle_timeout=5, frame_timeout=5)
            try:
                stream.read()
                stream.write(m.encode({"ok": True, "version": 1, "server": "stalling"}))
                stream.read()
                stream.write(m.encode({"ok": True}))
                stream.read()
                conn.sendall(b"\x00\x00\x00\x10{")  # 16 bytes announced, 1 sent
            except (OSError, PeerClosed):
                continue

    def close(self) -> None:
        self._listener.close()
        for conn in self._open:
            conn.close()


@pytest.fixture
def stalling() -> Iterator[StallingService]:
    directory = Path(tempfile.mkdtemp(prefix="svc-", dir="/tmp"))  # AF_UNIX paths are short
    service = StallingService(directory / "s.sock")
    yield service
    service.close()


def test_an_answer_that_stalls_half_way_is_a_timeout_and_is_not_sent_again(
    stalling: StallingService,
) -> None:
    conn = ServiceConnection(stalling.path, timeout=0.5)
    assert conn.request({"op": "ping"}) == {"ok": True}
    with pytest.raises(errors.SignerUnreachable, match="did not answer within"):
        conn.request({"op": "ping"})
    assert stalling.connections == 1  # a stalled answer is not a closed connection: no retry
    conn.close()

"""Framing of the signing socket: a 4-byte big-endian length, then that many bytes.

    frame  = length:u32be body[length]      1 <= length <= MAX_FRAME

The body is one UTF-8 JSON object (see ``edgeagent.protocol.messages`` and
docs/signing-protocol.md). A length of 0 or above ``MAX_FRAME`` is a protocol
error: the decoder raises ``FrameError`` and never allocates for it, so an
attacker cannot make the server reserve memory by announcing a huge frame.

    decoder = FrameDecoder()          # bytes in, bodies out; no I/O
    stream = FrameStream(sock, idle_timeout=300, frame_timeout=10)
    stream.write(body); body = stream.read()

``FrameStream`` keeps its socket non-blocking and waits with poll(2): a
request or answer costs one poll and one recv in the usual case (header and
body arrive together), where reading the header and the body separately
through a socket timeout cost three of each plus the timeout changes.
"""

from __future__ import annotations

import select
import socket
import struct
import time

MAX_FRAME = 64 * 1024
"""Largest body accepted: a sign request for 16 KiB of data fits with room."""

_LENGTH = struct.Struct(">I")
_READ_SIZE = 16 * 1024  # per recv; the rest of a larger frame is asked for in one recv


class FrameError(Exception):
    """The peer broke the framing: the connection cannot continue."""


class FrameTimeout(FrameError):
    """A frame that had begun did not arrive whole within the frame timeout."""


class PeerClosed(Exception):
    """The peer closed the connection cleanly between frames."""


def encode_frame(body: bytes) -> bytes:
    if not 0 < len(body) <= MAX_FRAME:
        raise FrameError(f"frame body of {len(body)} bytes; allowed 1..{MAX_FRAME}")
    return _LENGTH.pack(len(body)) + body


def parse_length(header: bytes | bytearray | memoryview) -> int:
    """The body length a 4-byte header announces; FrameError if out of range."""
    length: int = _LENGTH.unpack(header)[0]
    if not 0 < length <= MAX_FRAME:
        raise FrameError(f"announced frame length {length}; allowed 1..{MAX_FRAME}")
    return length


class FrameDecoder:
    """Bytes in, frame bodies out. Holds at most one frame plus one read's worth."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next whole body, or None until more bytes come; FrameError on a bad header."""
        buffer = self._buffer
        if len(buffer) < _LENGTH.size:
            return None
        end = _LENGTH.size + parse_length(buffer[: _LENGTH.size])
        if len(buffer) < end:
            return None
        body = bytes(buffer[_LENGTH.size : end])
        del buffer[:end]
        return body

    @property
    def missing(self) -> int:
        """Bytes still to come for the frame begun (4 when none is begun)."""
        have = len(self._buffer)
        if have < _LENGTH.size:
            return _LENGTH.size - have
        return _LENGTH.size + parse_length(self._buffer[: _LENGTH.size]) - have

    @property
    def idle(self) -> bool:
        """No byte of a next frame is buffered."""
        return not self._buffer


class FrameStream:
    """Frames over a connected stream socket, with the two timeouts of the protocol.

    ``read`` waits up to ``idle_timeout`` for a frame to start (TimeoutError:
    the peer is idle); once its first byte is in, the whole frame must arrive
    within ``frame_timeout`` (else FrameTimeout, a FrameError), so a peer
    cannot hold a connection by sending half a header and stalling, or by
    dribbling. ``write`` must complete within ``frame_timeout``
    (TimeoutError). None waits forever.
    """

    def __init__(
        self, sock: socket.socket, *, idle_timeout: float | None, frame_timeout: float | None
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self._decoder = FrameDecoder()
        self._readable = select.poll()
        self._readable.register(sock, select.POLLIN)
        self._writable: select.poll | None = None

    def read(self) -> bytes:
        """One frame's body. PeerClosed at a clean end; FrameError when cut short."""
        decoder = self._decoder
        body = decoder.next_frame()
        if body is not None:
            return body
        if decoder.idle:
            self._receive(_deadline(self.idle_timeout), at_boundary=True)
        deadline = _deadline(self.frame_timeout)
        while (body := decoder.next_frame()) is None:
            self._receive(deadline, at_boundary=False)
        return body

    def write(self, body: bytes) -> None:
        data = memoryview(encode_frame(body))
        deadline = _deadline(self.frame_timeout)
        while data:
            try:
                data = data[self.sock.send(data) :]
            except BlockingIOError:
                if self._writable is None:
                    self._writable = select.poll()
                    self._writable.register(self.sock, select.POLLOUT)
                if not _poll(self._writable, deadline):
                    raise TimeoutError("the peer does not read its answers") from None

    def close(self) -> None:
        self.sock.close()

    def _receive(self, deadline: float | None, *, at_boundary: bool) -> None:
        """Read what is there (waiting until ``deadline``) into the decoder.

        Between frames the next one is rarely there yet: wait first. Inside a
        frame the rest usually is: read first.
        """
        ready = not at_boundary or _poll(self._readable, deadline)
        while True:
            if not ready:
                if at_boundary:
                    raise TimeoutError("no frame from the peer")
                raise FrameTimeout("frame not complete in time")
            try:
                chunk = self.sock.recv(max(self._decoder.missing, _READ_SIZE))
            except BlockingIOError:
                ready = _poll(self._readable, deadline)
                continue
            if not chunk:
                if at_boundary:
                    raise PeerClosed
                raise FrameError("connection closed in the middle of a frame")
            self._decoder.feed(chunk)
            return


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _poll(poller: select.poll, deadline: float | None) -> bool:
    """Wait for the registered event until ``deadline``; False when it passed."""
    if deadline is None:
        return bool(poller.poll())
    left = deadline - time.monotonic()
    return left > 0 and bool(poller.poll(max(1, round(left * 1000))))

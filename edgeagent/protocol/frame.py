"""Framing of the signing socket: a 4-byte big-endian length, then that many bytes.

    frame  = length:u32be body[length]      1 <= length <= MAX_FRAME

The body is one UTF-8 JSON object (see ``edgeagent.protocol.messages`` and
docs/signing-protocol.md). A length of 0 or above ``MAX_FRAME`` is a protocol
error: the reader raises ``FrameError`` and never allocates for it, so an
attacker cannot make the server reserve memory by announcing a huge frame.
"""

from __future__ import annotations

import socket
import struct
import time

MAX_FRAME = 64 * 1024
"""Largest body accepted: a sign request for 16 KiB of data fits with room."""

_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """The peer broke the framing: the connection cannot continue."""


class PeerClosed(Exception):
    """The peer closed the connection cleanly between frames."""


def encode_frame(body: bytes) -> bytes:
    if not 0 < len(body) <= MAX_FRAME:
        raise FrameError(f"frame body of {len(body)} bytes; allowed 1..{MAX_FRAME}")
    return _LENGTH.pack(len(body)) + body


def parse_length(header: bytes) -> int:
    """The body length a 4-byte header announces; FrameError if out of range."""
    length: int = _LENGTH.unpack(header)[0]
    if not 0 < length <= MAX_FRAME:
        raise FrameError(f"announced frame length {length}; allowed 1..{MAX_FRAME}")
    return length


def read_frame(sock: socket.socket, frame_timeout: float | None = None) -> bytes:
    """Read one frame's body. PeerClosed at a clean end; FrameError when cut short.

    Waiting for a frame to start uses the socket's own timeout (TimeoutError:
    the peer is idle). Once the first byte is in, the rest of the frame must
    arrive within ``frame_timeout`` seconds, else FrameError: a peer cannot
    hold a connection by sending half a header and stalling, or by dribbling.
    """
    first = _read_exactly(sock, 1, at_boundary=True, deadline=None)
    deadline = None if frame_timeout is None else time.monotonic() + frame_timeout
    header = first + _read_exactly(sock, _LENGTH.size - 1, at_boundary=False, deadline=deadline)
    return _read_exactly(sock, parse_length(header), at_boundary=False, deadline=deadline)


def write_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(encode_frame(body))


def _read_exactly(
    sock: socket.socket, size: int, *, at_boundary: bool, deadline: float | None
) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    saved_timeout = sock.gettimeout()
    try:
        while remaining:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FrameError("frame not complete in time")
                sock.settimeout(left if saved_timeout is None else min(left, saved_timeout))
            try:
                chunk = sock.recv(remaining)
            except TimeoutError:
                if deadline is None:
                    raise
                raise FrameError("frame not complete in time") from None
            if not chunk:
                if at_boundary and remaining == size:
                    raise PeerClosed
                raise FrameError("connection closed in the middle of a frame")
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        if deadline is not None:
            sock.settimeout(saved_timeout)
    return b"".join(chunks)

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


def read_frame(sock: socket.socket) -> bytes:
    """Read one frame's body. PeerClosed at a clean end; FrameError when cut short."""
    header = _read_exactly(sock, _LENGTH.size, at_boundary=True)
    return _read_exactly(sock, parse_length(header), at_boundary=False)


def write_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(encode_frame(body))


def _read_exactly(sock: socket.socket, size: int, *, at_boundary: bool) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            if at_boundary and remaining == size:
                raise PeerClosed
            raise FrameError(f"connection closed {size - remaining} bytes into a {size}-byte read")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)

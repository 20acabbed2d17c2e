"""Framing of the signing socket: length limits, truncation, stalls."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from edgeagent.protocol.frame import (
    MAX_FRAME,
    FrameError,
    PeerClosed,
    encode_frame,
    parse_length,
    read_frame,
    write_frame,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.settimeout(5)
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


def test_a_frame_is_a_big_endian_length_then_the_body() -> None:
    assert encode_frame(b"{}") == b"\x00\x00\x00\x02{}"
    assert encode_frame(b"x" * 300)[:4] == b"\x00\x00\x01\x2c"


@pytest.mark.parametrize("size", [1, 2, 1000, MAX_FRAME])
def test_bodies_from_1_byte_to_max_frame_go_through(
    pair: tuple[socket.socket, socket.socket], size: int
) -> None:
    a, b = pair
    body = bytes(i % 251 for i in range(size))
    sender = threading.Thread(target=write_frame, args=(a, body))
    sender.start()
    assert read_frame(b) == body
    sender.join()


@pytest.mark.parametrize("size", [0, MAX_FRAME + 1])
def test_encoding_refuses_empty_and_oversized_bodies(size: int) -> None:
    with pytest.raises(FrameError, match=f"1..{MAX_FRAME}"):
        encode_frame(b"x" * size)


@pytest.mark.parametrize("length", [0, MAX_FRAME + 1, 2**31, 2**32 - 1])
def test_an_announced_length_out_of_range_is_refused_before_reading(length: int) -> None:
    with pytest.raises(FrameError, match="announced frame length"):
        parse_length(struct.pack(">I", length))


def test_max_frame_is_64_kib() -> None:
    assert MAX_FRAME == 65536
    assert parse_length(struct.pack(">I", MAX_FRAME)) == MAX_FRAME


def test_an_oversized_header_fails_without_waiting_for_the_body(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    a.sendall(b"\xff\xff\xff\xff")  # no body follows: the reader must not wait for one
    started = time.monotonic()
    with pytest.raises(FrameError):
        read_frame(b)
    assert time.monotonic() - started < 1


def test_clean_close_between_frames_is_peer_closed(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    write_frame(a, b"{}")
    a.shutdown(socket.SHUT_WR)
    assert read_frame(b) == b"{}"
    with pytest.raises(PeerClosed):
        read_frame(b)


@pytest.mark.parametrize(
    "sent",
    [b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x10", b'\x00\x00\x00\x10{"op":'],
    ids=["1-byte-header", "3-byte-header", "header-only", "half-body"],
)
def test_a_close_inside_a_frame_is_a_frame_error(
    pair: tuple[socket.socket, socket.socket], sent: bytes
) -> None:
    a, b = pair
    a.sendall(sent)
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(FrameError, match="middle of a frame"):
        read_frame(b)


def test_an_idle_peer_is_a_timeout_not_a_frame_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    _, b = pair
    b.settimeout(0.2)
    with pytest.raises(TimeoutError):
        read_frame(b, frame_timeout=5)


@pytest.mark.parametrize("sent", [b"\x00\x00", b"\x00\x00\x00\x10{"], ids=["header", "body"])
def test_a_frame_that_stalls_half_way_fails_after_the_frame_timeout(
    pair: tuple[socket.socket, socket.socket], sent: bytes
) -> None:
    a, b = pair
    b.settimeout(60)  # the idle timeout is long; the frame timeout must win
    a.sendall(sent)
    started = time.monotonic()
    with pytest.raises(FrameError, match="not complete in time"):
        read_frame(b, frame_timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2
    assert b.gettimeout() == 60  # the socket's own timeout is restored


def test_a_frame_dribbled_byte_by_byte_within_the_timeout_is_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    frame = encode_frame(b'{"op":"ping"}')

    def dribble() -> None:
        for byte in frame:
            a.sendall(bytes([byte]))
            time.sleep(0.005)

    sender = threading.Thread(target=dribble)
    sender.start()
    assert read_frame(b, frame_timeout=5) == b'{"op":"ping"}'
    sender.join()

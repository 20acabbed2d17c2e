"""Framing of the signing socket: length limits, truncation, stalls, buffering."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from edgeagent.protocol.frame import (
    MAX_FRAME,
    FrameDecoder,
    FrameError,
    FrameStream,
    PeerClosed,
    encode_frame,
    parse_length,
)


def stream(sock: socket.socket, idle: float | None = 5, frame: float | None = 5) -> FrameStream:
    return FrameStream(sock, idle_timeout=idle, frame_timeout=frame)


def read_frame(sock: socket.socket, frame_timeout: float | None = 5) -> bytes:
    return stream(sock, frame=frame_timeout).read()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
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
    sender = threading.Thread(target=stream(a).write, args=(body,))
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
    stream(a).write(b"{}")
    a.shutdown(socket.SHUT_WR)
    reader = stream(b)
    assert reader.read() == b"{}"
    with pytest.raises(PeerClosed):
        reader.read()


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
    with pytest.raises(TimeoutError):
        stream(b, idle=0.2, frame=5).read()


@pytest.mark.parametrize("sent", [b"\x00\x00", b"\x00\x00\x00\x10{"], ids=["header", "body"])
def test_a_frame_that_stalls_half_way_fails_after_the_frame_timeout(
    pair: tuple[socket.socket, socket.socket], sent: bytes
) -> None:
    a, b = pair
    a.sendall(sent)
    started = time.monotonic()
    with pytest.raises(FrameError, match="not complete in time"):
        stream(b, idle=60, frame=0.3).read()  # the idle timeout is long; the frame's wins
    assert 0.25 < time.monotonic() - started < 2


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


def test_frames_sent_back_to_back_are_read_one_by_one(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    a.sendall(encode_frame(b"one") + encode_frame(b"two") + encode_frame(b"three")[:5])
    reader = stream(b, frame=0.3)
    assert reader.read() == b"one"
    assert reader.read() == b"two"
    a.sendall(encode_frame(b"three")[5:])
    assert reader.read() == b"three"


def test_a_write_to_a_peer_that_never_reads_times_out(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    writer = stream(a, frame=0.3)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        for _ in range(1000):  # far more than the socket buffers hold
            writer.write(b"x" * MAX_FRAME)
    assert 0.25 < time.monotonic() - started < 2


def test_the_decoder_waits_for_whole_frames_and_keeps_what_follows() -> None:
    decoder = FrameDecoder()
    assert decoder.idle and decoder.missing == 4
    wire = encode_frame(b"abc") + encode_frame(b"de")
    decoder.feed(wire[:2])
    assert decoder.next_frame() is None and decoder.missing == 2 and not decoder.idle
    decoder.feed(wire[2:5])
    assert decoder.next_frame() is None and decoder.missing == 2
    decoder.feed(wire[5:])
    assert decoder.next_frame() == b"abc"
    assert decoder.next_frame() == b"de"
    assert decoder.next_frame() is None and decoder.idle


def test_the_decoder_refuses_a_bad_header_as_soon_as_it_is_whole() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x01\x00")
    assert decoder.next_frame() is None
    decoder.feed(b"\x01")  # 65537 announced
    with pytest.raises(FrameError, match="65537"):
        decoder.next_frame()

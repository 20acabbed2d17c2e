"""MQTT 3.1.1 packets: the few the bridge needs, encoded and parsed from buffers.

    reader = PacketReader()
    for kind, flags, body in reader.feed(data):   # complete packets only
        if kind == PUBLISH:
            message = parse_publish(flags, body)

Pure functions over bytes: no sockets, no state beyond the reader's buffer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

MAX_PACKET = 1 << 20
"""Largest packet we accept: a broker sending more is broken or hostile."""

CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}

_U16 = struct.Struct(">H")


class ProtocolError(Exception):
    """The peer sent something that is not MQTT 3.1.1."""


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int  # 0 for QoS 0


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for us when our connection dies unannounced."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


# -- encoding ------------------------------------------------------------------------


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return _U16.pack(len(data)) + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + _remaining_length(len(body)) + body


def connect(
    client_id: str,
    keepalive: int,
    clean_session: bool,
    username: str | None = None,
    will: Will | None = None,
    protocol_level: int = 4,
) -> bytes:
    """CONNECT; ``protocol_level`` 0x84 is MQTT 3.1.1 as mosquitto's bridges speak it."""
    flags = 0x02 if clean_session else 0
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _string(will.topic) + _string(will.payload)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    header = _string("MQTT") + bytes((protocol_level, flags)) + _U16.pack(keepalive)
    return _packet(CONNECT << 4, header + payload)


def publish(
    topic: str | bytes, payload: bytes, qos: int, retain: bool, packet_id: int, dup: bool = False
) -> bytes:
    first = (PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    variable = _string(topic) + (_U16.pack(packet_id) if qos else b"")
    return _packet(first, variable + payload)


def ack(kind: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL (flags 0b0010, as the spec requires) or PUBCOMP."""
    first = (kind << 4) | (0x02 if kind == PUBREL else 0)
    return bytes((first, 2)) + _U16.pack(packet_id)


def subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = _U16.pack(packet_id) + b"".join(_string(f) + bytes((q,)) for f, q in filters)
    return _packet((SUBSCRIBE << 4) | 0x02, body)


PINGREQ_PACKET = bytes((PINGREQ << 4, 0))
DISCONNECT_PACKET = bytes((DISCONNECT << 4, 0))


# -- parsing -------------------------------------------------------------------------


class PacketReader:
    """Splits a byte stream into whole packets; keeps a partial one for later."""

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._buffer = bytearray()
        self._max = max_packet

    def feed(self, data: bytes) -> Iterator[tuple[int, int, bytes]]:
        """Append ``data``; yield (packet type, flags, body) for each complete packet."""
        buffer = self._buffer
        buffer += data
        start, end = 0, len(buffer)
        try:
            while end - start >= 2:
                header = _remaining(buffer, start + 1, end)
                if header is None:
                    break  # the length itself has not fully arrived
                length, body_at = header
                if length > self._max:
                    raise ProtocolError(f"packet of {length} bytes exceeds {self._max}")
                if end - body_at < length:
                    break
                first = buffer[start]
                start = body_at + length
                yield first >> 4, first & 0x0F, bytes(buffer[body_at:start])
        finally:
            if start:
                del buffer[:start]

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def _remaining(buffer: bytearray, at: int, end: int) -> tuple[int, int] | None:
    """Decode the remaining-length varint at ``at``: (length, body offset) or None."""
    length = 0
    for position in range(4):
        if at + position >= end:
            return None
        byte = buffer[at + position]
        length |= (byte & 0x7F) << (7 * position)
        if not byte & 0x80:
            return length, at + position + 1
    raise ProtocolError("remaining length longer than four bytes")


def parse_publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")
    if len(body) < 2:
        raise ProtocolError("PUBLISH too short for its topic")
    (topic_length,) = _U16.unpack_from(body)
    offset = 2 + topic_length
    if len(body) < offset + (2 if qos else 0):
        raise ProtocolError("PUBLISH shorter than its topic and packet id")
    try:
        topic = body[2:offset].decode()
    except UnicodeDecodeError as error:
        raise ProtocolError("PUBLISH topic is not UTF-8") from error
    packet_id = 0
    if qos:
        (packet_id,) = _U16.unpack_from(body, offset)
        offset += 2
    return Publish(topic, body[offset:], qos, bool(flags & 1), bool(flags & 0x08), packet_id)


def parse_packet_id(body: bytes) -> int:
    if len(body) < 2:
        raise ProtocolError("acknowledgement without a packet id")
    return int(_U16.unpack_from(body)[0])


def parse_connack(body: bytes) -> tuple[bool, int]:
    """(session present, return code)."""
    if len(body) != 2:
        raise ProtocolError("CONNACK must be 2 bytes")
    return bool(body[0] & 1), body[1]

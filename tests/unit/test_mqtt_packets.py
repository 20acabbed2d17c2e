import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeagent.mqtt import packets as p


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


@given(
    topic=st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t),
    payload=st.binary(max_size=400),
    qos=st.integers(0, 2),
    retain=st.booleans(),
    dup=st.booleans(),
    packet_id=st.integers(1, 65535),
    cuts=st.lists(st.integers(0, 1000), max_size=6),
)
@settings(max_examples=200, deadline=None)
def test_publish_round_trips_through_any_chunking(
    topic: str, payload: bytes, qos: int, retain: bool, dup: bool, packet_id: int, cuts: list[int]
) -> None:
    wire = p.publish(topic, payload, qos, retain, packet_id if qos else 0, dup)
    reader = p.PacketReader()
    out = [
        packet for piece in split(wire + p.ack(p.PUBACK, 7), cuts) for packet in reader.feed(piece)
    ]
    assert len(out) == 2
    kind, flags, body = out[0]
    assert kind == p.PUBLISH
    message = p.parse_publish(flags, body)
    assert (message.topic, message.payload, message.qos, message.retain) == (
        topic,
        payload,
        qos,
        retain,
    )
    assert message.packet_id == (packet_id if qos else 0)
    assert out[1][0] == p.PUBACK and p.parse_packet_id(out[1][2]) == 7
    assert reader.buffered == 0


def test_remaining_length_boundaries() -> None:
    for size in (0, 127, 128, 16383, 16384, 2_097_151, 2_097_152):
        wire = p.publish("t", b"x" * size, 0, False, 0)
        [(kind, _, body)] = list(p.PacketReader(max_packet=1 << 23).feed(wire))
        assert kind == p.PUBLISH and len(body) == size + 3


def test_oversized_and_malformed_lengths_are_protocol_errors() -> None:
    with pytest.raises(p.ProtocolError, match="exceeds"):
        list(p.PacketReader(max_packet=100).feed(p.publish("t", b"x" * 200, 0, False, 0)))
    with pytest.raises(p.ProtocolError, match="four bytes"):
        list(p.PacketReader().feed(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])))


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_crash_the_reader(data: bytes) -> None:
    reader = p.PacketReader(max_packet=1000)
    try:
        for kind, flags, body in reader.feed(data):
            if kind == p.PUBLISH:
                p.parse_publish(flags, body)
            elif kind in (p.PUBACK, p.PUBREC, p.PUBREL, p.PUBCOMP):
                p.parse_packet_id(body)
            elif kind == p.CONNACK:
                p.parse_connack(body)
    except p.ProtocolError:
        pass


def test_connect_and_subscribe_encodings() -> None:
    wire = p.connect("dev", 60, False, will=p.Will("h", b"down", qos=1, retain=True))
    [(kind, _, body)] = list(p.PacketReader().feed(wire))
    assert kind == p.CONNECT
    assert body[:7] == b"\x00\x04MQTT\x04"
    assert body[7] == 0x04 | 0x08 | 0x20  # will, will QoS 1, will retain; not clean
    sub = p.subscribe(3, [("s/ds", 1), ("s/e", 2)])
    assert sub[0] == 0x82
    assert p.ack(p.PUBREL, 9) == b"\x62\x02\x00\x09"

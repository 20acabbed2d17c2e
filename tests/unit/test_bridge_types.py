"""The bridge's own types: end-to-end acks through Delivery, the Will, endpoints left alone."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading

from edgeagent.bridge.bridge import Bridge
from edgeagent.bridge.rule import BridgeRule
from edgeagent.bridge.rules import TopicRules
from edgeagent.mqtt import packets as p
from edgeagent.mqtt.endpoint import Endpoint
from tests.support.fake_socket import FakeSocket

RULES = TopicRules([BridgeRule("out", "c8y/", "", "s/us"), BridgeRule("in", "c8y/", "", "s/ds")])


def endpoints() -> tuple[Endpoint, Endpoint]:
    return Endpoint("local", "127.0.0.1", 1, "bridge"), Endpoint("c8y", "127.0.0.1", 2, "dev")


def test_the_endpoints_given_are_not_changed() -> None:
    local, cloud = endpoints()
    before = (dataclasses.replace(local), dataclasses.replace(cloud))
    bridge = Bridge(local, cloud, RULES, "agent/bridge/c8y/health", cloud_max_qos=1)
    assert (local, cloud) == before
    assert bridge.local.endpoint.subscriptions == ["c8y/s/us"]
    assert bridge.cloud.endpoint.subscriptions == ["s/ds"]
    assert bridge.cloud.endpoint.subscribe_qos == 1


def test_the_source_is_acked_only_when_the_target_has_the_message() -> None:
    bridge = Bridge(*endpoints(), RULES, "health")
    local_sock, cloud_sock = FakeSocket(), FakeSocket()
    bridge.local.resume(local_sock, present=False)
    bridge.cloud.resume(cloud_sock, present=False)
    for session, sock in ((bridge.local, local_sock), (bridge.cloud, cloud_sock)):
        session.flush()
        sock.packets()  # the SUBSCRIBEs

    local_sock.inbox.append(p.publish("c8y/s/us", b"200,T", 1, False, 41))
    bridge.local.on_readable()
    bridge.cloud.flush()
    bridge.local.flush()
    [(kind, flags, body)] = cloud_sock.packets()
    forwarded = p.parse_publish(flags, body)
    assert (kind, forwarded.topic, forwarded.payload, forwarded.qos) == (
        p.PUBLISH,
        "s/us",
        b"200,T",
        1,
    )
    assert local_sock.packets() == []  # not acked yet: the cloud does not have it

    cloud_sock.inbox.append(p.ack(p.PUBACK, forwarded.packet_id))
    bridge.cloud.on_readable()
    bridge.local.flush()
    assert [(k, p.parse_packet_id(b)) for k, _, b in local_sock.packets()] == [(p.PUBACK, 41)]
    assert bridge.forwarded == {"outbound": 1, "inbound": 0}


def test_the_local_broker_gets_a_retained_qos1_will() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    connect_packet: list[tuple[int, int, bytes]] = []

    def broker() -> None:
        conn, _ = server.accept()
        with conn:
            reader = p.PacketReader()
            while not connect_packet:
                connect_packet.extend(reader.feed(conn.recv(4096)))
            conn.sendall(bytes((p.CONNACK << 4, 2, 0, 0)))
            conn.recv(4096)  # until the client goes

    thread = threading.Thread(target=broker, daemon=True)
    thread.start()
    local = Endpoint("local", "127.0.0.1", server.getsockname()[1], "bridge", connect_timeout=5)
    bridge = Bridge(local, endpoints()[1], RULES, "agent/bridge/c8y/health")
    try:
        bridge.local.connect()
    finally:
        bridge.local.close(graceful=False)
        server.close()
    thread.join(5)
    [(kind, _, body)] = connect_packet
    assert kind == p.CONNECT
    flags = body[7]
    assert flags & 0x04, "no will"
    assert (flags >> 3) & 0x03 == 1, "will QoS is not 1"
    assert flags & 0x20, "will is not retained"
    rest = body[10 + 2 + len("bridge") :]  # header, client id
    topic_len = int.from_bytes(rest[:2], "big")
    assert rest[2 : 2 + topic_len] == b"agent/bridge/c8y/health"
    payload_len = int.from_bytes(rest[2 + topic_len : 4 + topic_len], "big")
    will = json.loads(rest[4 + topic_len : 4 + topic_len + payload_len])
    assert (will["status"], will["reason"]) == ("down", "bridge lost")

"""The session's acknowledgement rules, over a fake socket (pure protocol logic)."""

from __future__ import annotations

from typing import Any

from edgeagent.mqtt import packets as p
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.mqtt.session import MqttSession
from tests.support.fake_socket import FakeSocket


class Events:
    def __init__(self) -> None:
        self.messages: list[p.Publish] = []
        self.delivered: list[Any] = []

    def on_message(self, session: MqttSession[Any], message: p.Publish) -> None:
        self.messages.append(message)

    def on_delivered(self, session: MqttSession[Any], token: Any) -> None:
        self.delivered.append(token)


def connected(present: bool = False) -> tuple[MqttSession[Any], FakeSocket, Events]:
    events = Events()
    session = MqttSession(Endpoint("local", "h", 1, "c"), events)
    sock = FakeSocket()
    session.resume(sock, present)
    session.flush()
    sock.packets()
    return session, sock, events


def deliver(session: MqttSession[Any], sock: FakeSocket, packet: bytes) -> None:
    sock.inbox.append(packet)
    session.on_readable()
    session.flush()


def kinds(sock: FakeSocket) -> list[tuple[int, int]]:
    return [(kind, p.parse_packet_id(body)) for kind, _, body in sock.packets()]


def test_qos1_redelivery_of_a_message_on_its_way_is_not_forwarded_twice() -> None:
    session, sock, events = connected()
    deliver(session, sock, p.publish("t", b"x", 1, False, 7))
    deliver(session, sock, p.publish("t", b"x", 1, False, 7, dup=True))
    assert len(events.messages) == 1
    session.ack(7, 1, session.generation)
    session.flush()
    assert kinds(sock) == [(p.PUBACK, 7)]


def test_an_ack_owed_while_down_is_sent_when_the_session_resumes() -> None:
    session, sock, events = connected()
    deliver(session, sock, p.publish("t", b"x", 2, False, 5))
    session.close(graceful=False)
    session.ack(5, 2, session.generation)  # the other side acked while we were away
    again = FakeSocket()
    session.resume(again, present=True)
    session.flush()
    assert (p.PUBREC, 5) in kinds(again)
    # The broker's redelivery is answered, not forwarded a second time.
    deliver(session, again, p.publish("t", b"x", 2, False, 5, dup=True))
    assert kinds(again) == [(p.PUBREC, 5)]
    assert len(events.messages) == 1


def test_a_new_broker_session_voids_old_acks() -> None:
    session, sock, events = connected()
    deliver(session, sock, p.publish("t", b"old", 1, False, 3))
    old_generation = session.generation
    session.close(graceful=False)
    fresh = FakeSocket()
    session.resume(fresh, present=False)  # the broker forgot us
    session.flush()
    fresh.packets()
    deliver(session, fresh, p.publish("t", b"new", 1, False, 3))  # id 3 reused
    assert [m.payload for m in events.messages] == [b"old", b"new"]
    session.ack(3, 1, old_generation)  # the old message's ack arrives late
    session.flush()
    assert kinds(fresh) == [], "must not ack the new message 3"
    session.ack(3, 1, session.generation)
    session.flush()
    assert kinds(fresh) == [(p.PUBACK, 3)]


def test_resume_resends_unacked_in_sending_order_and_keeps_subscribe_ids_apart() -> None:
    events = Events()
    session = MqttSession(Endpoint("c", "h", 1, "c", subscriptions=["s/ds"]), events)
    session._next_id = 65533  # about to wrap
    sock = FakeSocket()
    session.resume(sock, present=False)
    for n in range(3):
        session.publish("s/us", b"%d" % n, qos=1, token=n)
    session.flush()
    sent = sock.packets()
    subscribe_id = p.parse_packet_id(sent[0][2])
    publish_ids = [p.parse_publish(f, b).packet_id for k, f, b in sent if k == p.PUBLISH]
    assert subscribe_id not in publish_ids
    session.close(graceful=False)
    again = FakeSocket()
    session.resume(again, present=True)
    session.flush()
    resent = [p.parse_publish(f, b) for k, f, b in again.packets() if k == p.PUBLISH]
    assert [m.payload for m in resent] == [b"0", b"1", b"2"]
    assert all(m.dup for m in resent)


def test_qos2_outbound_is_delivered_at_pubrec_and_released() -> None:
    session, sock, events = connected()
    session.publish("t", b"x", qos=2, token="tok")
    session.flush()
    [(_, flags, body)] = sock.packets()
    packet_id = p.parse_publish(flags, body).packet_id
    deliver(session, sock, p.ack(p.PUBREC, packet_id))
    assert events.delivered == ["tok"]
    assert kinds(sock) == [(p.PUBREL, packet_id)]
    deliver(session, sock, p.ack(p.PUBCOMP, packet_id))
    assert session.backlog == 0

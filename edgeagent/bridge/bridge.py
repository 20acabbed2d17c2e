"""The built-in bridge: local broker <-> cloud broker, in one thread.

    bridge = Bridge(local_endpoint, cloud_endpoint, rules, health_topic)
    bridge.run(stop_event)          # until stop_event is set

No message is lost at QoS 1 or 2: a message taken from one side is
acknowledged there only once the other side has acknowledged our copy
(end-to-end acks). While the cloud is away, unacknowledged messages stay
with the local broker, which keeps at most its in-flight window with us and
queues the rest for our persistent session. QoS 0 messages are forwarded
when both sides are up, and dropped otherwise, as QoS 0 allows.

One thread runs both connections with a selector: no locks, no hand-offs
between threads, and an ack can never race the message it acknowledges.
Only a link's connect (TCP, TLS with the token's signature, CONNACK) runs in
a worker thread, bounded by one deadline, so a slow or silent cloud never
stalls the local link (connector.py); the loop takes the connected socket
back and stop cancels a connect in progress at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeagent.bridge import health
from edgeagent.bridge.broker_link import BrokerLink
from edgeagent.bridge.connector import BackgroundConnect
from edgeagent.bridge.echoes import ExpectedEchoes
from edgeagent.bridge.repeated_warnings import RepeatedWarnings
from edgeagent.bridge.rules import TopicRules
from edgeagent.bridge.status_feed import StatusFeed, StatusSink, bridge_counters
from edgeagent.bridge.status_file import CLOUD_LINK, LOCAL_LINK, Counters
from edgeagent.errors import AgentError
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.mqtt.packets import ProtocolError, Publish, Will
from edgeagent.mqtt.session import MqttSession, Opened

log = logging.getLogger("edgeagent.bridge")

TICK = 1.0
HIGH_WATER = 512 * 1024
"""Stop reading a side while the other has this much unsent: TCP then pushes
back to the source broker instead of the bridge hoarding messages."""
MAX_PENDING = 300
"""Stop reading a side while the other holds this many unacknowledged
messages: brokers do not reliably bound what they send a client (mosquitto
sent thousands past its max_inflight_messages in our tests), so the bridge
bounds its own memory and TCP pushes back to the source broker. 300 keeps
QoS 1 throughput where 1000 had it (benchmarks) with ~1 MB less peak heap."""


# Not frozen: one is made per forwarded QoS 1/2 message, and a frozen
# dataclass's __init__ goes through object.__setattr__ (325 ns against 85 ns
# here, measured); nothing writes to it after it is made.
@dataclass(slots=True)
class Delivery:
    """The token a forwarded QoS 1/2 message carries: what to acknowledge where.

    When the target broker has our copy, ``source`` gets the acknowledgement
    for ``packet_id`` (end-to-end acks), unless its broker session
    ``generation`` has changed meanwhile (the id may be a new message's now).
    """

    source: MqttSession[Delivery]
    packet_id: int
    qos: int
    generation: int


_Side = BrokerLink[Delivery]
"""One broker connection and its reconnect schedule (broker_link.py)."""


class Bridge:
    def __init__(
        self,
        local: Endpoint,
        cloud: Endpoint,
        rules: TopicRules,
        health_topic: str,
        cloud_max_qos: int = 2,
        cloud_retain: bool = False,
        cloud_max_payload: int | None = None,
        status: StatusSink | None = None,
    ) -> None:
        self.rules = rules
        self.health_topic = health_topic
        self._cloud_max_qos = cloud_max_qos
        self._cloud_retain = cloud_retain
        self._cloud_max_payload = cloud_max_payload
        # Copies: the caller's endpoints stay as they were given.
        # As a mosquitto bridge, the local broker keeps the retain flag of the
        # messages it hands us (AWS keeps retained messages) and never hands us
        # our own messages back (see echoes.py).
        local = dataclasses.replace(
            local, subscriptions=rules.local_filters(), bridge_protocol=True
        )
        cloud = dataclasses.replace(
            cloud,
            subscriptions=rules.remote_filters(),
            subscribe_qos=min(cloud.subscribe_qos, cloud_max_qos),
        )
        lost = Will(health_topic, health.down("bridge lost").to_json(), qos=1, retain=True)
        self.local: MqttSession[Delivery] = MqttSession(local, self, will=lost)
        self.cloud: MqttSession[Delivery] = MqttSession(cloud, self)
        self._cloud_side = BrokerLink(self.cloud, CLOUD_LINK)
        self._sides = (BrokerLink(self.local, LOCAL_LINK), self._cloud_side)
        self._to_remote: dict[str, str | None] = {}
        self._to_local: dict[str, str | None] = {}
        # Both-way rules: our own messages come back from the broker (echoes.py).
        self._echoes = ExpectedEchoes(rules) if rules.may_echo else None
        self.forwarded = {"outbound": 0, "inbound": 0}
        self.dropped_oversize = 0
        self.dropped_no_rule = 0
        # What `agent status` shows, paced (status_feed.py).
        self._status = StatusFeed(status, self.counters)
        # Warnings a peer can trigger per message: one line per topic per interval.
        self._warnings = RepeatedWarnings(log)
        self.up = threading.Event()
        self._selector: selectors.BaseSelector | None = None

    # -- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._selector = selector = selectors.DefaultSelector()
        # A connect worker writes a byte here when it ends: select wakes at once.
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        selector.register(wake_r, selectors.EVENT_READ, None)

        def wake() -> None:
            with contextlib.suppress(OSError):
                wake_w.send(b"!")

        try:
            while not stop.is_set():
                now = time.monotonic()
                self._warnings.tick(now)
                self._status.tick(now)
                for side in self._sides:
                    if side.session.up:
                        self._guard(side, side.session.tick, now)
                    elif side.connecting is not None:
                        if side.connecting.done:
                            self._connected(side, selector)
                    elif now >= side.retry_at:
                        side.connecting = BackgroundConnect(side.session, wake)
                busy = False
                for side in self._sides:
                    session = side.session
                    if session.up:
                        self._guard(side, session.flush)
                        if session.up:
                            other = self.cloud if session is self.local else self.local
                            full = other.write_backlog > HIGH_WATER or other.backlog >= MAX_PENDING
                            # Keep reading while our ping waits for its answer, or a
                            # long pause would make a healthy link look dead.
                            paused = full and not session.awaiting_ping
                            events = 0 if paused else selectors.EVENT_READ
                            if session.wants_write:
                                events |= selectors.EVENT_WRITE
                            self._watch(selector, side, events)
                            busy = busy or bool(events and session.has_buffered_input)
                timeout = 0.0 if busy else self._timeout(now)
                for key, mask in selector.select(timeout):
                    side = key.data
                    if side is None:  # a connect ended: the next round takes it
                        with contextlib.suppress(OSError):
                            wake_r.recv(64)
                        continue
                    if mask & selectors.EVENT_READ and side.session.up:
                        self._guard(side, side.session.on_readable)
                    if mask & selectors.EVENT_WRITE and side.session.up:
                        self._guard(side, side.session.flush)
                for side in self._sides:
                    session = side.session
                    watching = side.events & selectors.EVENT_READ
                    if session.up and watching and session.has_buffered_input:
                        self._guard(side, session.on_readable)
                if self.local.up and self.cloud.up:
                    self.up.set()
                else:
                    self.up.clear()
        finally:
            self._shutdown(selector)
            wake_r.close()
            wake_w.close()

    @staticmethod
    def _watch(selector: selectors.BaseSelector, side: _Side, events: int) -> None:
        """Make the selector watch ``events`` on the side's socket (0: nothing)."""
        if events == side.events:
            return
        sock = side.session.sock
        if side.events == 0:
            selector.register(sock, events, side)
        elif events == 0:
            selector.unregister(sock)
        else:
            selector.modify(sock, events, side)
        side.events = events

    def _timeout(self, now: float) -> float:
        waits = [TICK]
        status_due = self._status.wait(now)
        if status_due is not None:
            waits.append(status_due)  # the counters' next write
        waits += [
            s.retry_at - now for s in self._sides if not s.session.up and s.connecting is None
        ]
        return max(0.0, min(waits))

    def _connected(self, side: _Side, selector: selectors.BaseSelector) -> None:
        """Take the outcome of the side's finished connect (connector.py)."""
        session = side.session
        connecting, side.connecting = side.connecting, None
        outcome = connecting.outcome if connecting is not None else None
        if isinstance(outcome, (AgentError, OSError, ProtocolError)):
            self._connect_failed(side, outcome)
            return
        if not isinstance(outcome, Opened):  # a bug or a library's surprise: retry, never die
            log.error(
                "unexpected error connecting to the %s broker",
                session.endpoint.name,
                exc_info=outcome if isinstance(outcome, BaseException) else None,
            )
            self._connect_failed(side, RuntimeError(f"{type(outcome).__name__}: {outcome}"))
            return
        session.resume_opened(outcome)
        side.events = 0
        self._watch(selector, side, selectors.EVENT_READ)
        side.connected()  # the next outage is retried at once
        ep = session.endpoint
        log.info("%s broker connected (%s:%d)", ep.name, ep.host, ep.port)
        self._status.link_up(side.name)
        self._publish_health()

    def _guard(self, side: _Side, action: Callable[..., object], *args: float) -> None:
        """Run one session step; a failure drops that connection, never the bridge."""
        try:
            action(*args)
        except (AgentError, OSError, ProtocolError, ValueError) as error:
            self._drop(side, f"{type(error).__name__}: {error}")
        except Exception as error:  # a bug or a library's surprise: drop, never die
            log.exception("unexpected error on the %s link", side.session.endpoint.name)
            self._drop(side, f"{type(error).__name__}: {error}")

    def _drop(self, side: _Side, reason: str) -> None:
        session = side.session
        if session.sock is not None and self._selector is not None and side.events:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(session.sock)
        side.events = 0
        session.close(graceful=False)
        side.error = None
        self._schedule_retry(side, f"connection lost: {reason}")
        self._publish_health()

    def _connect_failed(self, side: _Side, error: BaseException) -> None:
        # The health topic carries our error's cause, class and fix (health.py);
        # the log line carries the whole error.
        reason = error.cause if isinstance(error, AgentError) else str(error)
        changed = reason != side.reason
        side.error = error
        self._schedule_retry(side, reason, logged=str(error))
        if changed and side is self._cloud_side:
            self._publish_health()  # the health topic says why the cloud is down

    def _schedule_retry(self, side: _Side, reason: str, logged: str = "") -> None:
        side.reason = reason
        self._status.link_down(side.name, reason)
        delay = side.schedule_retry()
        log.warning(
            "%s broker down: %s (retry in %.0f s)",
            side.session.endpoint.name,
            logged or reason,
            delay,
        )

    def _shutdown(self, selector: selectors.BaseSelector) -> None:
        at_stop = self.counters()  # before our own "stopped" health message is in flight
        for side in self._sides:
            if side.connecting is not None:
                side.connecting.cancel()  # at once: no failure, nothing logged
                side.connecting = None
        self._warnings.flush()
        if self.local.up:
            stopped = health.down("bridge stopped").to_json()
            self.local.publish(self.health_topic, stopped, qos=1, retain=True)
        self.cloud.close()
        self.local.close()
        selector.close()
        self._status.stopped(at_stop)

    # -- status ----------------------------------------------------------------------------

    def counters(self) -> Counters:
        """Forwarded and dropped since start, and in flight now (for `agent status`)."""
        return bridge_counters(
            self.forwarded, self.dropped_oversize, self.dropped_no_rule, self.cloud, self.local
        )

    # -- forwarding (SessionEvents) ---------------------------------------------------------

    def on_message(self, session: MqttSession[Delivery], message: Publish) -> None:
        self._status.moved = True
        echoes = self._echoes
        from_local = session is self.local
        if echoes is not None and echoes.is_echo(from_local, message.topic, message.payload):
            session.ack(message.packet_id, message.qos)  # our own copy, back from the broker
            return
        if from_local:
            topic = self._map(self._to_remote, self.rules.to_remote, message.topic)
            target, direction = self.cloud, "outbound"
            qos = min(message.qos, self._cloud_max_qos)
            retain = message.retain and self._cloud_retain
            if (
                self._cloud_max_payload is not None
                and len(message.payload) > self._cloud_max_payload
            ):
                # The cloud would refuse it, and redelivery would repeat that
                # forever and stall every message queued behind it.
                self.dropped_oversize += 1
                self._warnings.warn(
                    ("oversize", message.topic),
                    "dropped a %d-byte message on %r: the cloud accepts at most %d bytes",
                    len(message.payload),
                    message.topic,
                    self._cloud_max_payload,
                )
                session.ack(message.packet_id, message.qos)
                return
        else:
            topic = self._map(self._to_local, self.rules.to_local, message.topic)
            target, direction = self.local, "inbound"
            qos, retain = message.qos, message.retain
        if topic is None:
            # Subscriptions and rules come from the same file: a broker that
            # delivers more than we asked for gets it acked and dropped.
            self.dropped_no_rule += 1
            self._warnings.warn(
                (direction, message.topic),
                "no %s rule for topic %r; dropped",
                direction,
                message.topic,
            )
            session.ack(message.packet_id, message.qos)
            return
        token = (
            Delivery(session, message.packet_id, message.qos, session.generation)
            if message.qos
            else None
        )
        if not target.publish(topic, message.payload, qos=qos, retain=retain, token=token):
            return  # QoS 0 with the other side down
        # The local broker echoes nothing to a bridge-mode client.
        if echoes is not None and (from_local or not self.local.bridge_mode):
            echoes.sent(not from_local, message.topic, topic, message.payload, side_up=target.up)
        self.forwarded[direction] += 1
        if message.qos and not qos:
            session.ack(message.packet_id, message.qos)  # downgraded: sent is all we get

    def on_delivered(self, session: MqttSession[Delivery], token: Delivery | None) -> None:
        self._status.moved = True
        if token is not None:
            token.source.ack(token.packet_id, token.qos, token.generation)

    @staticmethod
    def _map(
        cache: dict[str, str | None], rule: Callable[[str], str | None], topic: str
    ) -> str | None:
        try:
            return cache[topic]
        except KeyError:
            if len(cache) > 10_000:
                cache.clear()  # bounded: topics with ids in them are unbounded
            mapped: str | None = rule(topic)
            cache[topic] = mapped
            return mapped

    def _publish_health(self) -> None:
        if not self.local.up:
            return
        cloud = self._cloud_side
        state = health.up() if self.cloud.up else health.down(cloud.reason, cloud.error)
        self.local.publish(self.health_topic, state.to_json(), qos=1, retain=True)

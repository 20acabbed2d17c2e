"""The built-in bridge: local broker <-> cloud broker.

    bridge = Bridge(local_endpoint, cloud_endpoint, rules, health_topic)
    bridge.start()
    ...
    bridge.stop()

No message is lost at QoS 1 or 2: a message taken from one side is
acknowledged there only once the other side has acknowledged our copy
(end-to-end acks). While the cloud is away, unacknowledged messages stay
with the local broker, which keeps at most its in-flight window with us and
queues the rest for our persistent session. QoS 0 messages are forwarded
when both sides are up, and dropped otherwise, as QoS 0 allows.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from edgeagent.bridge.link import Endpoint, Link
from edgeagent.bridge.rules import TopicRules

log = logging.getLogger("edgeagent.bridge")

SWEEP_INTERVAL = 0.5


@dataclass(frozen=True)
class _Origin:
    """Where a forwarded QoS>0 message came from, to ack it there later."""

    link: Link
    mid: int
    qos: int
    info: mqtt.MQTTMessageInfo


class _AckRouter:
    """Maps our copy's mid on the target to the original's mid on the source.

    paho may report our copy delivered (in the target's thread) before the
    source thread has registered it; ``MQTTMessageInfo.is_published`` then
    tells us, either at registration or at the next sweep. The lock is never
    held across a paho call, so it cannot deadlock with paho's own locks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], _Origin] = {}

    def register(self, target: Link, origin: _Origin) -> None:
        key = (id(target), origin.info.mid)
        with self._lock:
            self._pending[key] = origin
        if origin.info.is_published():
            self.delivered(target, origin.info.mid)

    def delivered(self, target: Link, mid: int) -> None:
        with self._lock:
            origin = self._pending.pop((id(target), mid), None)
        if origin is not None:
            origin.link.ack(origin.mid, origin.qos)

    def sweep(self) -> None:
        with self._lock:
            done = [key for key, o in self._pending.items() if o.info.is_published()]
            origins = [self._pending.pop(key) for key in done]
        for origin in origins:
            origin.link.ack(origin.mid, origin.qos)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


class Bridge:
    """Forwards messages between a local and a cloud broker by the topic rules."""

    def __init__(
        self,
        local: Endpoint,
        cloud: Endpoint,
        rules: TopicRules,
        health_topic: str,
        cloud_max_qos: int = 2,
        cloud_retain: bool = False,
        cloud_max_payload: int | None = None,
    ) -> None:
        self.rules = rules
        self.health_topic = health_topic
        self._cloud_max_qos = cloud_max_qos
        self._cloud_retain = cloud_retain
        self._cloud_max_payload = cloud_max_payload
        self._acks = _AckRouter()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        local.subscriptions = rules.local_filters()
        cloud.subscriptions = rules.remote_filters()
        cloud.subscribe_qos = min(cloud.subscribe_qos, cloud_max_qos)
        self.local = Link(local, self, will=(health_topic, _health("down", "bridge stopped")))
        self.cloud = Link(cloud, self)
        self.forwarded = {"outbound": 0, "inbound": 0}
        self.dropped_oversize = 0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        self.local.start()
        self.cloud.start()
        self._sweeper = threading.Thread(target=self._sweep, name="bridge-acks", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self.local.is_up:
            self.local.publish(self.health_topic, _health("down", "bridge stopped"), 1, True)
        self.cloud.stop()
        self.local.stop()

    def wait_up(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return self.local.wait_up(timeout) and self.cloud.wait_up(
            max(0.0, deadline - time.monotonic())
        )

    def _sweep(self) -> None:
        while not self._stop.wait(SWEEP_INTERVAL):
            self._acks.sweep()

    # -- LinkEvents ----------------------------------------------------------------

    def on_message(self, link: Link, message: mqtt.MQTTMessage) -> None:
        if link is self.local:
            topic = self.rules.to_remote(message.topic)
            target, direction = self.cloud, "outbound"
            qos = min(message.qos, self._cloud_max_qos)
            retain = message.retain and self._cloud_retain
        else:
            topic = self.rules.to_local(message.topic)
            target, direction = self.local, "inbound"
            qos, retain = message.qos, message.retain
        if topic is None:
            # Subscribed filters and rules come from the same file, so this is
            # a broker delivering more than we asked for: ack and drop it.
            log.warning("no %s rule for topic %r; dropped", direction, message.topic)
            link.ack(message.mid, message.qos)
            return
        if (
            target is self.cloud
            and self._cloud_max_payload is not None
            and len(message.payload) > self._cloud_max_payload
        ):
            # The cloud would refuse it, and redelivery would repeat that
            # forever and stall every message queued behind it.
            self.dropped_oversize += 1
            log.warning(
                "dropped a %d-byte message on %r: the cloud accepts at most %d bytes",
                len(message.payload),
                message.topic,
                self._cloud_max_payload,
            )
            link.ack(message.mid, message.qos)
            return
        if message.qos == 0 and not target.is_up:
            return  # QoS 0 may be dropped; nothing to ack
        info = target.publish(topic, message.payload, qos, retain)
        self.forwarded[direction] += 1
        if message.qos == 0:
            return
        if qos == 0:
            link.ack(message.mid, message.qos)
            return
        self._acks.register(target, _Origin(link, message.mid, message.qos, info))

    def on_delivered(self, link: Link, mid: int) -> None:
        self._acks.delivered(link, mid)

    def on_up(self, link: Link) -> None:
        log.info(
            "%s broker connected (%s:%d)",
            link.endpoint.name,
            link.endpoint.host,
            link.endpoint.port,
        )
        self._publish_health()

    def on_down(self, link: Link, reason: str) -> None:
        log.warning("%s broker down: %s", link.endpoint.name, reason)
        self._publish_health(reason)

    def _publish_health(self, reason: str = "") -> None:
        if not self.local.is_up:
            return
        if self.cloud.is_up:
            payload = _health("up", "")
        else:
            payload = _health("down", reason or "connecting to the cloud")
        self.local.publish(self.health_topic, payload, 1, True)


def _health(status: str, reason: str) -> bytes:
    body: dict[str, object] = {"status": status, "time": round(time.time(), 3)}
    if reason:
        body["reason"] = reason
    return json.dumps(body).encode()

"""Cumulocity's device token, asked for through the running bridge: ``c8y/s/uat`` -> ``71,<JWT>``.

    token = fetch_c8y_token("127.0.0.1", 1883, timeout=30)

On the local broker: subscribe to ``c8y/s/dat``, publish an empty message to
``c8y/s/uat`` (the bridge forwards it to the cloud's ``s/uat``), and wait for
the cloud's ``71,<token>`` to come back. ``simplereenroll`` takes it as
``Authorization: Bearer <token>``. The token is a credential: returned, never
logged. (The ``clouds`` layer's connect check makes the same round trip; the
two can share one function later.)
"""

from __future__ import annotations

import queue
import secrets
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.errors import BrokerUnreachable, EnrolmentRefused

REQUEST_TOPIC = "c8y/s/uat"
ANSWER_TOPIC = "c8y/s/dat"


def fetch_c8y_token(host: str, port: int, *, timeout: float = 30.0) -> str:
    """The JWT Cumulocity hands the connected device; our errors when it does not come."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"agent-cert-renew-{secrets.token_hex(4)}",
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        events.put(("connack", reason))

    def on_subscribe(_c: mqtt.Client, _u: Any, _m: Any, _r: Any, _p: Any) -> None:
        events.put(("suback", None))

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        events.put(("message", bytes(message.payload)))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=60)
    except OSError as error:
        raise BrokerUnreachable(
            f"the local broker {host}:{port} is unreachable: {error.strerror or error}",
            "start the local MQTT broker (mqtt.client.host / mqtt.client.port)",
        ) from error
    client.loop_start()
    try:
        kind, reason = events.get(timeout=timeout)
        if kind != "connack" or reason.is_failure:
            raise BrokerUnreachable(f"the local broker {host}:{port} refused us: {reason}")
        client.subscribe(ANSWER_TOPIC, qos=1)
        _wait_for(events, "suback", timeout)
        client.publish(REQUEST_TOPIC, b"", qos=1)
        deadline = time.monotonic() + timeout
        while True:
            payload = _wait_for(events, "message", max(deadline - time.monotonic(), 0.01))
            if isinstance(payload, bytes) and payload.startswith(b"71,"):
                return payload[3:].decode("ascii", "replace").strip()
    finally:
        client.disconnect()
        client.loop_stop()


def _wait_for(events: queue.Queue[tuple[str, Any]], wanted: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    try:
        while True:
            kind, value = events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if kind == wanted:
                return value
    except queue.Empty:
        raise EnrolmentRefused(
            f"no token from Cumulocity on {ANSWER_TOPIC} within {timeout:.0f} s "
            f"(asked on {REQUEST_TOPIC})",
            "renewal by Cumulocity's EST needs the device connected: agent connect c8y",
        ) from None

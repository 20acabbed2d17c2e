"""A small, blocking MQTT client for tests (paho-mqtt 2.x, Python `ssl`).

Use it to watch or feed a broker the agent talks to:

    with MqttProbe(local_broker.host, local_broker.port) as probe:
        probe.subscribe("c8y/s/ds", qos=1)
        ...  # make the cloud publish
        [msg] = probe.wait_for(1, "c8y/s/ds", timeout=5)
        assert msg.payload == b"510,device"

    ctx = client_tls_context(pki.ca.cert_path, client.cert_path, client.key_path)
    with MqttProbe("localhost", cloud_broker.tls_port, tls=ctx) as cloud:
        cloud.publish("s/ds", b"510,device", qos=1)

`connect()` (and `with`) raises `ProbeConnectError` when the broker or the
TLS handshake refuses the client, or nothing answers in time.
"""

from __future__ import annotations

import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode


class ProbeConnectError(ConnectionError):
    """The probe could not connect; the message says what the broker or TLS said."""


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def client_tls_context(
    cafile: Path | None,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    *,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client `ssl.SSLContext` trusting `cafile`, presenting `certfile`/`keyfile` if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = minimum_version
    ctx.maximum_version = maximum_version
    if cafile is not None:
        ctx.load_verify_locations(cafile=str(cafile))
    ctx.check_hostname = check_hostname
    if certfile is not None:
        ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    return ctx


class MqttProbe:
    """One MQTT connection with a network thread; every call blocks until done."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str | None = None,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311,
        clean_session: bool = True,
        keepalive: int = 30,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id or f"probe-{uuid.uuid4().hex[:10]}"
        self.keepalive = keepalive
        kwargs: dict[str, Any] = {}
        if protocol != MQTTProtocolVersion.MQTTv5:
            kwargs["clean_session"] = clean_session
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,
            **kwargs,
        )
        if tls is not None:
            self.client.tls_set_context(tls)
        if username is not None:
            self.client.username_pw_set(username)
        self._lock = threading.Condition()
        self._connect_result: ReasonCode | None = None
        self._disconnect_reason: str | None = None
        self._messages: list[Received] = []
        self._acks: set[int] = set()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_log = self._on_log
        # paho reports a TLS alert after the handshake (TLS 1.3 client-cert
        # refusals) only in its log; keep the last lines for error messages.
        self._log: list[str] = []
        self._loop_started = False

    # -- paho callbacks (network thread) ---------------------------------
    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._lock:
            self._connect_result = rc
            self._lock.notify_all()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._lock:
            self._disconnect_reason = str(rc)
            self._lock.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._messages.append(Received(msg.topic, bytes(msg.payload), msg.qos, msg.retain))
            self._lock.notify_all()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, rcs: Any, _p: Any) -> None:
        with self._lock:
            self._acks.add(mid)
            self._lock.notify_all()

    _on_unsubscribe = _on_subscribe

    def _on_log(self, _c: mqtt.Client, _u: Any, level: int, text: str) -> None:
        if level not in (mqtt.MQTT_LOG_ERR, mqtt.MQTT_LOG_WARNING):
            return
        with self._lock:
            self._log.append(text)
            del self._log[:-20]

    # -- blocking API ----------------------------------------------------
    def connect(self, timeout: float = 10.0) -> MqttProbe:
        """Connect and wait for a successful CONNACK, else raise `ProbeConnectError`."""
        try:
            self.client.connect(self.host, self.port, keepalive=self.keepalive)
        except (OSError, ssl.SSLError) as e:  # TCP refused, TLS handshake failed
            raise ProbeConnectError(f"{self.host}:{self.port}: {e!r}") from e
        # Never reconnect behind a test's back.
        self.client.reconnect_delay_set(min_delay=3600, max_delay=3600)
        self.client.loop_start()
        self._loop_started = True
        ok = False
        try:
            with self._lock:
                self._lock.wait_for(
                    lambda: self._connect_result is not None or self._disconnect_reason is not None,
                    timeout,
                )
                if self._connect_result is not None and not self._connect_result.is_failure:
                    ok = True
                    return self
                if self._connect_result is not None:
                    reason = f"CONNACK {self._connect_result}"
                elif self._disconnect_reason is not None:
                    reason = f"disconnected before CONNACK: {self._disconnect_reason}"
                    if self._log:
                        reason += f" ({'; '.join(self._log[-3:])})"
                else:
                    reason = f"no CONNACK within {timeout} s"
            raise ProbeConnectError(f"{self.host}:{self.port}: {reason}")
        finally:
            if not ok:
                self.close()

    @property
    def connected(self) -> bool:
        return bool(self.client.is_connected())

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> None:
        """Subscribe and wait for the SUBACK."""
        rc, mid = self.client.subscribe(topic, qos)
        self._check(rc, f"subscribe {topic}")
        self._wait_ack(mid, timeout, f"SUBACK for {topic}")

    def unsubscribe(self, topic: str, timeout: float = 5.0) -> None:
        rc, mid = self.client.unsubscribe(topic)
        self._check(rc, f"unsubscribe {topic}")
        self._wait_ack(mid, timeout, f"UNSUBACK for {topic}")

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        *,
        retain: bool = False,
        timeout: float = 5.0,
    ) -> None:
        """Publish; with QoS > 0 wait until the broker acknowledged it."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        self._check(info.rc, f"publish {topic}")
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"publish to {topic} (QoS {qos}) not acknowledged in {timeout} s")

    def wait_for(self, count: int, topic: str = "#", timeout: float = 10.0) -> list[Received]:
        """Wait until `count` messages matching the filter `topic` arrived; return the first ones.

        Raises TimeoutError listing what did arrive.
        """
        with self._lock:
            ok = self._lock.wait_for(lambda: len(self._matching(topic)) >= count, timeout)
            matching = self._matching(topic)
        if not ok:
            raise TimeoutError(
                f"{len(matching)} of {count} messages on {topic!r} within {timeout} s; "
                f"received: {[(m.topic, m.payload[:60]) for m in self.messages][:20]}"
            )
        return matching[:count]

    def _matching(self, topic: str) -> list[Received]:
        return [m for m in self._messages if mqtt.topic_matches_sub(topic, m.topic)]

    @property
    def messages(self) -> list[Received]:
        """Every message received so far (a copy)."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def disconnect(self) -> None:
        """Send DISCONNECT (if connected) and stop the network thread."""
        if self.client.is_connected():
            self.client.disconnect()
        self.close()

    def close(self) -> None:
        if self._loop_started:
            self.client.loop_stop()
            self._loop_started = False
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def __enter__(self) -> MqttProbe:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    # -- internals -------------------------------------------------------
    def _check(self, rc: MQTTErrorCode, what: str) -> None:
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"{what}: {mqtt.error_string(rc)}")

    def _wait_ack(self, mid: int | None, timeout: float, what: str) -> None:
        if mid is None:
            raise ConnectionError(f"{what}: paho gave no message id")
        with self._lock:
            if not self._lock.wait_for(lambda: mid in self._acks, timeout):
                raise TimeoutError(f"no {what} within {timeout} s")
            self._acks.discard(mid)

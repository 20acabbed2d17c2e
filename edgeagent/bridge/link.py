"""One side of the bridge: an MQTT connection that keeps itself up.

    link = Link(endpoint, events)
    link.start()        # connects in the background, reconnects with back-off
    link.publish("s/us", b"100", qos=1)
    link.stop()

paho's own reconnect loop only survives ``OSError``; our TLS layer raises
our own errors (wrong PIN, untrusted server...) with the fix in them, so a
supervisor thread owns connecting and paho's thread only runs one session.
Incoming QoS>0 messages are acknowledged by the caller (``manual_ack``): the
bridge acks a message on one side only once the other side has it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edgeagent.errors import AgentError, BrokerRefused, BrokerUnreachable

log = logging.getLogger("edgeagent.bridge")

MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0
STABLE_AFTER = 30.0  # a session this long resets the back-off


class WrapsSockets(Protocol):
    """A TLS context paho accepts (``edgeagent.tls.client.TlsClientContext``)."""

    check_hostname: bool

    def wrap_socket(self, sock: Any, server_hostname: str | None = ...) -> Any: ...


@dataclass
class Endpoint:
    """Where one side of the bridge connects, and as whom."""

    name: str  # "local" or the cloud's name, for logs and health
    host: str
    port: int
    client_id: str
    tls: WrapsSockets | None = None
    username: str | None = None
    keepalive: int = 60
    # Slow tokens (a TPM) sign in seconds; thin-edge raised 5 s to 60 s.
    connect_timeout: float = 60.0
    subscriptions: list[str] = field(default_factory=list)
    subscribe_qos: int = 2
    max_inflight: int = 20


class LinkEvents(Protocol):
    def on_message(self, link: Link, message: mqtt.MQTTMessage) -> None: ...

    def on_delivered(self, link: Link, mid: int) -> None: ...

    def on_up(self, link: Link) -> None: ...

    def on_down(self, link: Link, reason: str) -> None: ...


class Link:
    """A supervised paho client for one endpoint."""

    def __init__(
        self,
        endpoint: Endpoint,
        events: LinkEvents,
        will: tuple[str, bytes] | None = None,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._events = events
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._up = threading.Event()
        self._wait = sleep or self._stop.wait
        self._thread: threading.Thread | None = None
        self.last_error: AgentError | OSError | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=endpoint.client_id,
            clean_session=False,  # the broker keeps our QoS>0 messages while we are away
            protocol=mqtt.MQTTv311,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        client.connect_timeout = endpoint.connect_timeout
        client.max_inflight_messages_set(endpoint.max_inflight)
        client.max_queued_messages_set(0)
        if endpoint.tls is not None:
            client.tls_set_context(endpoint.tls)  # type: ignore[arg-type]
        if endpoint.username is not None:
            client.username_pw_set(endpoint.username)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client

    # -- public ------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    def wait_up(self, timeout: float) -> bool:
        return self._up.wait(timeout)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._supervise, name=f"link-{self.endpoint.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly and stop reconnecting."""
        self._stop.set()
        self._lost.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def publish(
        self, topic: str, payload: bytes | bytearray, qos: int, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        """Queue a message; QoS>0 messages survive until the broker acks them."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def ack(self, mid: int, qos: int) -> None:
        self._client.ack(mid, qos)

    # -- supervisor --------------------------------------------------------------

    def _supervise(self) -> None:
        backoff = MIN_BACKOFF
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._connect_once()
            except (AgentError, OSError) as error:
                self.last_error = error
                self._events.on_down(self, _describe(error))
            if self._stop.is_set():
                break
            if time.monotonic() - started > STABLE_AFTER:
                backoff = MIN_BACKOFF
            # Jitter keeps a fleet of gateways from reconnecting in lockstep.
            self._wait(backoff * random.uniform(0.8, 1.2))  # noqa: S311
            backoff = min(backoff * 2, MAX_BACKOFF)
        self._shutdown()

    def _connect_once(self) -> None:
        endpoint = self.endpoint
        self._lost.clear()
        try:
            self._client.connect(endpoint.host, endpoint.port, endpoint.keepalive)
        except ConnectionRefusedError as error:
            raise BrokerUnreachable(
                f"{endpoint.name} broker {endpoint.host}:{endpoint.port} refused the connection",
                "check that the broker runs and the host and port are right",
            ) from error
        self._client.loop_start()
        try:
            # paho's thread ends with the session; poll in case no callback fires.
            while not self._lost.wait(1.0):
                if self._client._thread is None or not self._client._thread.is_alive():
                    break
        finally:
            self._up.clear()
            if self._stop.is_set():
                self._client.disconnect()
            self._client.loop_stop()

    def _shutdown(self) -> None:
        self._up.clear()
        with contextlib.suppress(OSError):
            self._client.disconnect()

    # -- paho callbacks (paho's thread) -----------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.last_error = BrokerRefused(
                f"{self.endpoint.name} broker refused the connection: {reason}",
                "check the device certificate is registered with the cloud",
            )
            self._events.on_down(self, str(self.last_error.cause))
            self._lost.set()
            return
        for topic in self.endpoint.subscriptions:
            client.subscribe(topic, qos=self.endpoint.subscribe_qos)
        self.last_error = None
        self._up.set()
        self._events.on_up(self)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        was_up = self._up.is_set()
        self._up.clear()
        self._lost.set()
        if was_up and not self._stop.is_set():
            self._events.on_down(self, f"connection lost ({reason})")

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._events.on_message(self, message)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._events.on_delivered(self, mid)


def _describe(error: AgentError | OSError) -> str:
    if isinstance(error, AgentError):
        return str(error)
    return f"{type(error).__name__}: {error}"


__all__ = ["Endpoint", "Link", "LinkEvents", "MQTTErrorCode"]

"""Responders: the cloud's side of `agent connect`'s round trip, next to a stand-in broker.

    with CumulocityResponder(broker):          # empty s/uat -> s/dat "71,<JWT>"
        ...
    with AzureTwinResponder(broker) as hub:    # $iothub/twin/GET/?$rid=7
        ...                                    #   -> $iothub/twin/res/200/?$rid=7
        hub.silent = True                      # the cloud stops answering: "not registered"

Each one is an MQTT client of the stand-in broker (with its own client
certificate, as the cloud's own services would be) that answers the
requests the real cloud answers, on the topics and in the format the real
cloud uses. ``silent`` makes it hear requests (``requests`` records them)
without answering: the "cloud does not answer" case.

AWS IoT Core needs no responder: the device is subscribed to the topic it
publishes its test message on, and the broker itself hands the message back
(mosquitto does the same). Its "does not answer" case is a policy that does
not let the device receive that topic: `aws_policy.AwsPolicy`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qs

import paho.mqtt.client as mqtt

from integration.standin.broker import BrokerAddress, connect_and_subscribe

_ids = itertools.count(1)


@dataclass(frozen=True)
class Exchange:
    """One request the responder heard, and what it answered (nothing if silent)."""

    topic: str
    payload: bytes
    answers: tuple[tuple[str, bytes], ...]


class Responder:
    """A cloud service on the stand-in broker: hears ``filters``, answers via `respond`."""

    name = "responder"
    filters: tuple[str, ...] = ()

    def __init__(
        self, broker: BrokerAddress, *, client_id: str | None = None, silent: bool = False
    ) -> None:
        self.broker = broker
        self.client_id = client_id or f"{self.name}-{next(_ids)}"
        self.silent = silent
        self._client: mqtt.Client | None = None
        self._exchanges: list[Exchange] = []
        self._changed = threading.Condition()

    def respond(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        """The cloud's answers (topic, payload) to one request; none to ignore it."""
        raise NotImplementedError

    # -- running -----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Self:
        """Connect and subscribe; return once the broker has the subscriptions."""
        client = self.broker.client(self.client_id)
        client.on_message = self._on_message
        connect_and_subscribe(client, self.broker, list(self.filters), timeout)
        self._client = client
        return self

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what happened -----------------------------------------------------------------

    @property
    def exchanges(self) -> list[Exchange]:
        with self._changed:
            return list(self._exchanges)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Exchange]:
        """The first ``count`` exchanges, once there are that many."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._exchanges) >= count, timeout):
                raise TimeoutError(
                    f"{self.name} heard {len(self._exchanges)} of {count} requests in {timeout} s"
                )
            return self._exchanges[:count]

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        answers = [] if self.silent else self.respond(message.topic, bytes(message.payload))
        for topic, payload in answers:
            client.publish(topic, payload, qos=1)
        with self._changed:
            self._exchanges.append(Exchange(message.topic, bytes(message.payload), tuple(answers)))
            self._changed.notify_all()


class CumulocityResponder(Responder):
    """Cumulocity's token request: an empty message on ``s/uat`` -> ``71,<JWT>`` on ``s/dat``."""

    name = "c8y-standin"
    filters = ("s/uat",)

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        tenant: str = "t-standin",
        client_id: str | None = None,
        silent: bool = False,
    ) -> None:
        super().__init__(broker, client_id=client_id, silent=silent)
        self.tenant = tenant
        self._secret = secrets.token_bytes(32)

    def respond(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        if payload:
            return []  # Cumulocity answers an empty request only
        return [("s/dat", f"71,{self.token()}".encode())]

    def token(self, lifetime: int = 3600) -> str:
        """A JWT as Cumulocity issues them: HS256-signed, with tenant and lifetime claims."""
        now = int(time.time())
        claims = {
            "iss": f"{self.tenant}.standin.cumulocity.local",
            "aud": f"{self.tenant}.standin.cumulocity.local",
            "sub": "device_standin",
            "ten": self.tenant,
            "jti": secrets.token_hex(16),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
        }
        head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64url(json.dumps(claims).encode())
        signature = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64url(signature)}"


class AzureTwinResponder(Responder):
    """IoT Hub's device twin: GET answers the document, PATCH of reported properties 204.

    ``$iothub/twin/GET/?$rid=7`` -> ``$iothub/twin/res/200/?$rid=7`` with
    ``{"desired": {...}, "reported": {...}}``;
    ``$iothub/twin/PATCH/properties/reported/?$rid=8`` with a JSON object ->
    ``$iothub/twin/res/204/?$rid=8&$version=2`` (400 if it is not one). A
    request without ``$rid`` gets no answer, as on the hub.
    """

    name = "az-standin"
    filters = ("$iothub/twin/GET/#", "$iothub/twin/PATCH/properties/reported/#")

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        desired: dict[str, Any] | None = None,
        client_id: str | None = None,
        silent: bool = False,
    ) -> None:
        super().__init__(broker, client_id=client_id, silent=silent)
        self._lock = threading.Lock()
        self.desired: dict[str, Any] = {**(desired or {}), "$version": 1}
        self.reported: dict[str, Any] = {"$version": 1}

    def respond(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        path, _, query = topic.partition("?")
        rid = parse_qs(query).get("$rid", [""])[0]
        if not rid:
            return []
        if path == "$iothub/twin/GET/":
            with self._lock:
                document = {"desired": self.desired, "reported": self.reported}
                return [(f"$iothub/twin/res/200/?$rid={rid}", json.dumps(document).encode())]
        if path == "$iothub/twin/PATCH/properties/reported/":
            try:
                patch = json.loads(payload)
            except ValueError:
                patch = None
            if not isinstance(patch, dict):
                return [(f"$iothub/twin/res/400/?$rid={rid}", b"")]
            with self._lock:
                _merge(self.reported, patch)
                self.reported["$version"] += 1
                version = self.reported["$version"]
            return [(f"$iothub/twin/res/204/?$rid={rid}&$version={version}", b"")]
        return []


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """JSON merge patch (RFC 7386), as IoT Hub applies reported-property updates."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

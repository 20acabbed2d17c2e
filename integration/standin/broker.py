"""Where a stand-in cloud broker listens, and a paho client for it.

    broker = BrokerAddress("localhost", 8883, cafile=ca, certfile=cert, keyfile=key)
    client = broker.client("c8y-standin")     # paho, MQTT 3.1.1, TLS with a client certificate

The stand-in brokers are mosquitto with TLS and client certificates required
(tests/support/mosquitto.py starts them): a responder connects as a client
with its own certificate, like the cloud's own services do.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


class StandinError(RuntimeError):
    """A stand-in could not start: the message says what and where."""


@dataclass(frozen=True)
class BrokerAddress:
    """A broker's address; with ``cafile``, TLS (and a client certificate if given)."""

    host: str
    port: int
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        if self.cafile is None:
            return None
        context = ssl.create_default_context(cafile=str(self.cafile))
        if self.certfile is not None:
            context.load_cert_chain(str(self.certfile), str(self.keyfile or self.certfile))
        return context

    def client(self, client_id: str) -> mqtt.Client:
        """A paho client for this broker, not connected yet."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        context = self.tls_context()
        if context is not None:
            client.tls_set_context(context)
        return client


def connect_and_subscribe(
    client: mqtt.Client, broker: BrokerAddress, filters: list[str], timeout: float
) -> None:
    """Connect ``client`` (its network loop running) and return once every SUBACK is in."""
    ready = threading.Event()
    failure: list[str] = []

    def on_connect(
        c: mqtt.Client, _u: Any, _f: ConnectFlags, rc: ReasonCode, _p: Properties | None
    ) -> None:
        if rc.is_failure:
            failure.append(f"CONNACK {rc}")
            ready.set()
            return
        if not filters:
            ready.set()
            return
        c.subscribe([(f, 1) for f in filters])

    def on_subscribe(
        _c: mqtt.Client, _u: Any, _m: int, codes: list[ReasonCode], _p: Properties
    ) -> None:
        refused = [str(code) for code in codes if code.is_failure]
        if refused:
            failure.append(f"SUBACK refused {refused}")
        ready.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except (OSError, ssl.SSLError) as error:
        raise StandinError(f"cannot connect to {broker.host}:{broker.port}: {error}") from error
    client.loop_start()
    if not ready.wait(timeout) or failure:
        client.disconnect()
        client.loop_stop()
        what = failure[0] if failure else f"no CONNACK/SUBACK within {timeout} s"
        raise StandinError(f"stand-in client on {broker.host}:{broker.port}: {what}")

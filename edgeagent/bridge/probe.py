"""One test connection to a broker: TLS handshake + CONNECT/CONNACK, timed."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.errors import AgentError, BrokerRefused, BrokerUnreachable
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.tls.refusal import refused_after_handshake


@dataclass(frozen=True)
class ProbeResult:
    connack_seconds: float  # from TCP connect to CONNACK


def probe(endpoint: Endpoint, timeout: float = 60.0) -> ProbeResult:
    """Connect once as ``endpoint.client_id`` and disconnect; raise our errors.

    The session is persistent (clean_session=False) and nothing is
    subscribed, so the bridge's session on the broker is left as it was.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=endpoint.client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    client.connect_timeout = min(timeout, endpoint.connect_timeout)
    if endpoint.tls is not None:
        client.tls_set_context(endpoint.tls)  # type: ignore[arg-type]
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username)
    answered = threading.Event()
    outcome: list[Any] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        outcome.append(reason)
        answered.set()

    client.on_connect = on_connect
    where = f"{endpoint.host}:{endpoint.port}"
    started = time.perf_counter()
    try:
        client.connect(endpoint.host, endpoint.port, endpoint.keepalive)
    except socket.gaierror as error:
        raise BrokerUnreachable(
            f"cannot resolve {endpoint.host!r} ({error.strerror})",
            "check the host name in the cloud's url and the device's DNS settings",
        ) from error
    except OSError as error:
        # Refused, unreachable host or network, timeout: every socket error is ours to name.
        raise BrokerUnreachable(
            f"{endpoint.name} broker {where} is unreachable: {error.strerror or error}",
            "check the host and port in the cloud's url and the network path to it",
        ) from error
    try:
        deadline = started + timeout
        while not answered.is_set() and time.perf_counter() < deadline:
            if client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS and not answered.is_set():
                raise _closed_before_connack(endpoint, where)
        elapsed = time.perf_counter() - started
        if not outcome:
            raise BrokerUnreachable(
                f"{endpoint.name} broker {where} sent no CONNACK within {timeout:.0f} s",
                "check that the port is the broker's MQTT port",
            )
        if outcome[0].is_failure:
            raise BrokerRefused(
                f"{endpoint.name} broker {where} refused the device: {outcome[0]}",
                "check that the device certificate (or its CA) is registered with the cloud",
            )
        return ProbeResult(elapsed)
    finally:
        client.disconnect()
        client.loop(0.05)


def _closed_before_connack(endpoint: Endpoint, where: str) -> AgentError:
    """The broker closed the connection after TCP (and TLS) but before CONNACK."""
    if endpoint.tls is None:
        return BrokerRefused(
            f"{endpoint.name} broker {where} closed the connection before it answered CONNECT",
            "see the broker's log for why it refused the client",
        )
    return refused_after_handshake(endpoint.tls, where)

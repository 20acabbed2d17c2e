"""Test connections to a broker, timed.

    check_handshake(endpoint)   # TCP + TLS as the device, then goodbye: no MQTT byte
    probe(endpoint)             # TCP + TLS + CONNECT/CONNACK (tests and benchmarks)

`agent connect`, `reconnect` and `doctor` check the cloud with
:func:`check_handshake` only: a CONNECT with the device's client id and a
persistent session would log into the bridge's own session on the cloud
(taking it over from a running bridge, and being handed the messages queued
for it). The CONNACK is proved by the bridge's own first connection instead
(its health topic, bridge/health.py). :func:`probe` is for a client id that
is nobody's session: tests and benchmarks.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.errors import (
    AgentError,
    BrokerRefused,
    BrokerUnreachable,
    TlsHandshakeFailed,
)
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.tls.refusal import refused_after_handshake

ACCEPT_WAIT = 1.0
"""Seconds a TLS 1.3 check waits after the handshake for the server's word on the
device certificate (a session ticket, or the alert of a refusal)."""


@dataclass(frozen=True)
class HandshakeResult:
    seconds: float  # from TCP connect to the end of the handshake
    accepted: bool  # the server showed it took the device certificate (else: no refusal seen)


def check_handshake(endpoint: Endpoint, accept_wait: float = ACCEPT_WAIT) -> HandshakeResult:
    """TCP and the TLS handshake as the device, within ``endpoint.connect_timeout``; no MQTT.

    The server's chain and host name are verified and the token signs, as for
    the bridge. Over TLS 1.3 the server judges the device certificate after
    the handshake, so this reads briefly for its verdict: a refusal raises
    DeviceCertificateRefused (exit 56) like the bridge would. Every failure
    is one of our errors; no socket error escapes.
    """
    if endpoint.tls is None:
        raise ValueError("a handshake check needs TLS")
    where = f"{endpoint.host}:{endpoint.port}"
    started = time.perf_counter()
    deadline = time.monotonic() + endpoint.connect_timeout
    raw = _tcp_connect(endpoint, endpoint.connect_timeout)
    sock: Any = raw
    try:
        sock = endpoint.tls.wrap_socket(raw, server_hostname=endpoint.host)
        # The handshake's budget, in total (tls/deadline.py): what is left of the timeout.
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            sock.do_handshake()
        except AgentError:
            raise
        except OSError as error:
            raise TlsHandshakeFailed(
                f"the connection to {where} failed during the TLS handshake: "
                f"{error.strerror or error}",
                "check the network path to the cloud and that the port is its MQTT-over-TLS port",
            ) from error
        seconds = time.perf_counter() - started
        try:
            accepted = sock.await_certificate_verdict(accept_wait)
        except OSError as error:
            # Closed on us right after the handshake: how TLS 1.3 clouds refuse a device.
            raise refused_after_handshake(endpoint.tls, where) from error
        return HandshakeResult(seconds, accepted)
    finally:
        sock.close()


def unreachable(endpoint: Endpoint, error: OSError) -> BrokerUnreachable:
    """A socket error on the way to ``endpoint``, named: every one is ours to name
    (a name that does not resolve, refused, unreachable host or network, timeout)."""
    if isinstance(error, socket.gaierror):
        return BrokerUnreachable(
            f"cannot resolve {endpoint.host!r} ({error.strerror})",
            "check the host name in the cloud's url and the device's DNS settings",
        )
    return BrokerUnreachable(
        f"{endpoint.name} broker {endpoint.host}:{endpoint.port} is unreachable: "
        f"{error.strerror or error}",
        "check the host and port in the cloud's url and the network path to it",
    )


def _tcp_connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except OSError as error:
        raise unreachable(endpoint, error) from error


@dataclass(frozen=True)
class ProbeResult:
    connack_seconds: float  # from TCP connect to CONNACK


def probe(endpoint: Endpoint, timeout: float = 60.0) -> ProbeResult:
    """Connect once as ``endpoint.client_id`` and disconnect; raise our errors.

    The session is persistent (clean_session=False) and nothing is
    subscribed. Never with the client id of a device whose bridge has a
    session on that broker: see the module's docstring.
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
    except OSError as error:
        raise unreachable(endpoint, error) from error
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

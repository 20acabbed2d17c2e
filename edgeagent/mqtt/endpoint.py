"""Where one MQTT connection goes, and as whom."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

CONNECT_TIMEOUT_VARIABLE = "EDGEAGENT_CONNECT_TIMEOUT"
KEEPALIVE_VARIABLE = "EDGEAGENT_KEEPALIVE"
"""Internal knobs, not configuration: tests shorten the cloud's connect
deadline and every link's keepalive with them, to seconds. Not ``AGENT_*``:
those are configuration overrides."""


def _knob(variable: str, default: float) -> float:
    value = os.environ.get(variable)
    return float(value) if value else default


def default_connect_timeout() -> float:
    return _knob(CONNECT_TIMEOUT_VARIABLE, 60.0)


def default_keepalive() -> int:
    return int(_knob(KEEPALIVE_VARIABLE, 60))


class WrapsSockets(Protocol):
    """A TLS context paho and our sessions accept (``edgeagent.tls.client.TlsClientContext``)."""

    check_hostname: bool

    def wrap_socket(self, sock: Any, server_hostname: str | None = ...) -> Any: ...


@dataclass
class Endpoint:
    name: str  # "local" or the cloud's name, for logs and health
    host: str
    port: int
    client_id: str
    tls: WrapsSockets | None = None
    username: str | None = None
    keepalive: int = field(default_factory=default_keepalive)
    # Slow tokens (a TPM) sign in seconds; thin-edge raised 5 s to 60 s. For
    # TCP + TLS + CONNACK in total, not per read (MqttSession.open).
    connect_timeout: float = field(default_factory=default_connect_timeout)
    subscriptions: list[str] = field(default_factory=list)
    subscribe_qos: int = 2
    max_inflight: int = 100
    # Connect as a mosquitto bridge (protocol level 0x84, mosquitto's
    # try_private): the broker then keeps the retain flag of live messages as
    # published and does not send the client its own messages back. A broker
    # that refuses it gets plain MQTT 3.1.1 on the next attempt.
    bridge_protocol: bool = False

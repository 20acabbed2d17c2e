"""Watch a bridge's health topic on the local broker (bridge/health.py says what it holds).

    with HealthWatcher(config, profile) as health:    # subscribed before the bridge starts
        started = time.time()
        service.start()
        health.wait_up(service, since=started)        # the bridge's CONNACK, or its error

The bridge's first connection to the cloud is connect's CONNACK check:
`agent connect` checks no more than a TLS handshake itself (preflight.py).
A "down" message that names one of our errors is that error, raised with
its cause and fix, so connect exits with its code (56 for a refused device
certificate, 61 for a refused CONNECT...), not with a generic timeout.
Messages older than ``since`` are an earlier bridge's and are ignored.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.bridge.health import Health, reported_error
from edgeagent.bridge.service import BridgeService
from edgeagent.clouds.profile import CloudProfile
from edgeagent.config import AgentConfig
from edgeagent.errors import AgentError, BrokerUnreachable, ServiceError

HEALTH_TIMEOUT = 90.0  # a TPM signs slowly; the bridge may need a second attempt
SUBSCRIBE_TIMEOUT = 10.0
RETRYABLE = (BrokerUnreachable,)
"""Errors the bridge may well get past on its next attempt (the network): connect
waits for them until HEALTH_TIMEOUT; any other reported error ends the wait at once."""


class HealthWatcher:
    def __init__(self, config: AgentConfig, profile: CloudProfile) -> None:
        self._host = config.mqtt.client.host
        self._port = config.mqtt.client.port
        self._profile = profile
        self._messages: list[Health] = []
        self._changed = threading.Event()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, *_: c.subscribe(profile.health_topic, 1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()

    @property
    def where(self) -> str:
        return f"{self._host}:{self._port}"

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        health = Health.from_json(bytes(message.payload))
        if health is not None:
            self._messages.append(health)
            self._changed.set()

    def __enter__(self) -> HealthWatcher:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect to the local broker and subscribe; BrokerUnreachable when it is not there."""
        try:
            self._client.connect(self._host, self._port)
        except OSError as error:
            raise BrokerUnreachable(
                f"the local broker {self.where} is unreachable: {error.strerror or error}",
                "start the local broker (mosquitto), or fix mqtt.client.host / mqtt.client.port",
            ) from error
        self._client.loop_start()
        if not self._subscribed.wait(SUBSCRIBE_TIMEOUT):
            self.close()
            raise BrokerUnreachable(
                f"the local broker {self.where} did not answer a subscription within "
                f"{SUBSCRIBE_TIMEOUT:.0f} s",
                "check that mqtt.client.host / mqtt.client.port name an MQTT broker",
            )

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def latest(self, since: float = 0.0) -> Health | None:
        """The last health message published at or after ``since`` (time.time())."""
        fresh = [h for h in self._messages if h.time >= since]
        return fresh[-1] if fresh else None

    def current(self, wait: float = 2.0) -> Health | None:
        """The bridge's latest health message (the retained one comes first), or None."""
        deadline = time.monotonic() + wait
        while not self._messages and time.monotonic() < deadline:
            self._changed.wait(0.05)
        return self.latest()

    def wait_up(
        self, service: BridgeService, since: float, timeout: float = HEALTH_TIMEOUT
    ) -> None:
        """Until the bridge started at ``since`` reports the cloud up; its error otherwise."""
        title = self._profile.title
        deadline = time.monotonic() + timeout
        last: AgentError | None = None
        health: Health | None = None
        while time.monotonic() < deadline:
            self._changed.clear()
            health = self.latest(since)
            if health is not None and health.up:
                return
            error = reported_error(health) if health is not None else None
            if error is not None:
                if not isinstance(error, RETRYABLE):
                    raise error
                last = error
            if not service.is_running():
                raise bridge_stopped(service)
            self._changed.wait(0.2)
        if last is not None:
            raise last
        reason = health.reason if health is not None else "no status"
        raise ServiceError(
            f"the bridge did not report {title} connected within {timeout:.0f} s "
            f"(last: {reason or 'no reason given'})",
            f"see {service.log_hint}",
        )


def bridge_stopped(service: BridgeService) -> ServiceError:
    """The bridge ended while connect waited: its log lines from this start, or where they are.

    Under systemd the bridge host logs to the journal, and ``service.log_file``
    is never written: its tail would only say "(no log)".
    """
    if service.manager == "systemd":
        return ServiceError(
            f"the {service.cloud} bridge stopped (its log is in the journal)",
            f"see {service.log_hint}",
        )
    return ServiceError("the bridge stopped:\n" + service.log_tail(), f"see {service.log_hint}")

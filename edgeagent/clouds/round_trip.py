"""Prove the cloud answers: one request through the running bridge, and its answer.

    seconds = round_trip(config, profile)   # raises CloudDidNotAnswer

The TLS session and CONNACK only show that the cloud's broker took the
device; whether the cloud *serves* it (the device is registered, its policy
allows the topics) shows only when the cloud answers a request. The request
goes to the local broker like any device-side client's, so it also proves
the bridge's rules carry it both ways.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.clouds.profile import CloudProfile, RoundTrip
from edgeagent.config import AgentConfig
from edgeagent.errors import CloudDidNotAnswer, ServiceError


def round_trip(config: AgentConfig, profile: CloudProfile) -> float:
    """Through the running bridge: seconds from request to answer; ``CloudDidNotAnswer``
    when none came."""
    check = profile.round_trip
    if check is None:
        return 0.0
    host, port = config.mqtt.client.host, config.mqtt.client.port
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"agent-check-{profile.name}-{secrets.token_hex(4)}",
        protocol=mqtt.MQTTv311,
    )
    try:
        client.connect(host, port)
    except OSError as error:
        raise ServiceError(
            f"cannot reach the local broker {host}:{port} to check the cloud answers: {error}",
            "start the local broker (mosquitto) or fix mqtt.client.host / mqtt.client.port",
        ) from error
    return _exchange(
        client, profile, _filter(check.answer), check.request.format, check.answer.format
    )


def _exchange(
    client: mqtt.Client,
    profile: CloudProfile,
    subscription: str,
    request: Callable[..., str],
    answer: Callable[..., str],
) -> float:
    check = profile.round_trip
    assert check is not None
    answers: list[tuple[str, bytes]] = []
    arrived = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        answers.append((message.topic, bytes(message.payload)))
        arrived.set()

    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(subscription, qos=1)
    client.loop_start()
    try:
        if not subscribed.wait(30.0):
            raise ServiceError(
                f"no subscription to {subscription} was confirmed within 30 s",
                "check the broker's log",
            )
        for _ in range(check.attempts):
            n = secrets.randbelow(1_000_000) + 1
            payload = secrets.token_hex(8).encode() if check.echo else check.payload
            started = time.monotonic()
            client.publish(request(n=n), payload, qos=1)
            deadline = started + check.seconds_per_attempt
            expected = answer(n=n)
            while time.monotonic() < deadline:
                arrived.wait(0.1)
                arrived.clear()
                if any(_answers(check, expected, payload, t, body) for t, body in answers):
                    return time.monotonic() - started
        raise CloudDidNotAnswer(
            f"the TLS and MQTT session to {profile.title} are up, but {profile.title} did not "
            f"answer {request(n='<n>')!r} on {answer(n='<n>')!r} "
            f"within {check.seconds_per_attempt:.0f} s ({check.attempts} attempt(s)): the "
            "device is probably not registered, or its policy does not allow these topics. "
            "The bridge keeps running.",
            _fix(profile),
        )
    finally:
        client.loop_stop()
        client.disconnect()


def _filter(answer: str) -> str:
    """The subscription for an answer topic: everything up to its request number."""
    if "{n}" not in answer:
        return answer
    head = answer.split("{n}", 1)[0]
    return head.rsplit("/", 1)[0] + "/#"


def _answers(check: RoundTrip, expected: str, sent: bytes, topic: str, body: bytes) -> bool:
    if topic != expected:
        return False
    if check.echo:
        return body == sent
    return body.startswith(check.answer_prefix)


def _fix(profile: CloudProfile) -> str:
    assert profile.round_trip is not None
    return f"{profile.round_trip.fix}; then: agent reconnect {profile.name}"

"""A slow or silent cloud never freezes the bridge (issue 13 part 3).

The attack as it was made: a "cloud" on loopback that accepts TCP, then
trickles a byte every second (tests/support/trickle.py). Each read the
client makes returns well within any per-read timeout, so only a deadline
on the whole connect (TCP + TLS + CONNACK) ends it. The deadline and the
local keepalive are shortened to seconds through the endpoint's internal
knobs (edgeagent/mqtt/endpoint.py). Before the fix, `agent connect` hung
until the trickle ended (20 s here, forever in the field), the local broker
dropped the frozen bridge for keepalive, and SIGTERM waited for the connect.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.mqtt.endpoint import CONNECT_TIMEOUT_VARIABLE, KEEPALIVE_VARIABLE, Endpoint
from edgeagent.mqtt.packets import Publish
from edgeagent.mqtt.session import ConnectAttempt, ConnectCancelled, MqttSession
from tests.support.agent_cli import AGENT, exit_code, run_agent
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.ports import LOOPBACK
from tests.support.trickle import TrickleServer

pytestmark = pytest.mark.integration

TRICKLE_LIFETIME = 20.0  # bounds every test against the unfixed agent
HEALTH = "agent/bridge/c8y/health"


@pytest.fixture
def trickle() -> Iterator[TrickleServer]:
    with TrickleServer(interval=1.0, lifetime=TRICKLE_LIFETIME) as server:
        yield server


@pytest.fixture
def stuck_gateway(gateway_factory: GatewayFactory, trickle: TrickleServer) -> Gateway:
    gw = gateway_factory("off")
    gw.set("c8y.url", f"localhost:{trickle.port}")
    return gw


@contextmanager
def bridge_process(
    gw: Gateway, log: Path, connect_timeout: float, keepalive: int = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """`agent bridge run c8y` in the foreground, its output in ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env[CONNECT_TIMEOUT_VARIABLE] = str(connect_timeout)
    env[KEEPALIVE_VARIABLE] = str(keepalive)
    with log.open("wb") as out:
        bridge = subprocess.Popen(
            [str(AGENT), "--config-dir", str(gw.config_dir), "bridge", "run", "c8y"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
        )
    try:
        yield bridge
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)


def _health_messages(gw: Gateway, seconds: float) -> list[dict[str, object]]:
    """The bridge's health messages on the local broker over ``seconds``."""
    with gw.local_client() as local:
        local.subscribe(HEALTH, qos=1)
        time.sleep(seconds)
        return [json.loads(m.payload) for m in local.messages if m.topic == HEALTH]


def _wait_for_local_link(gw: Gateway, bridge: subprocess.Popen[bytes], log: Path) -> None:
    """Until the bridge has said on the local broker that the cloud is down (connecting)."""
    deadline = time.monotonic() + 30
    with gw.local_client() as local:
        local.subscribe(HEALTH, qos=1)
        while not any(m.topic == HEALTH for m in local.messages):
            assert bridge.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)


def test_agent_connect_gives_up_on_a_trickling_cloud_within_the_deadline(
    stuck_gateway: Gateway, trickle: TrickleServer
) -> None:
    started = time.monotonic()
    done = run_agent(
        "connect",
        "c8y",
        config_dir=stuck_gateway.config_dir,
        env={CONNECT_TIMEOUT_VARIABLE: "3"},
        timeout=TRICKLE_LIFETIME + 30,
    )
    elapsed = time.monotonic() - started
    assert trickle.connections >= 1  # it did reach the trickling cloud
    assert done.returncode == exit_code(errors.TlsHandshakeFailed), done.stdout + done.stderr
    assert "within the connect timeout (3.0 s)" in done.stderr, done.stderr
    # 3 s of deadline plus the command's own start (Python, config, key): far from 20 s.
    assert elapsed < 10, f"agent connect took {elapsed:.1f} s"


def test_the_local_link_stays_up_while_the_cloud_connect_is_stuck(
    stuck_gateway: Gateway, tmp_path: Path
) -> None:
    gw = stuck_gateway
    log = tmp_path / "bridge.log"
    # A 2 s keepalive: mosquitto drops a client silent for 3 s; the connect stays stuck 15 s.
    with bridge_process(gw, log, connect_timeout=15, keepalive=2) as bridge:
        _wait_for_local_link(gw, bridge, log)
        started = time.monotonic()
        health = _health_messages(gw, 8)  # retained: the last one, then any new one
        with gw.local_client() as local:
            # The local broker still hands the bridge its messages: it takes QoS 1 ones.
            local.publish("c8y/s/us", b"200,c8y_Temperature,T,25", qos=1, timeout=5)
        stuck_for = time.monotonic() - started
        assert bridge.poll() is None, log.read_text()
    reasons = [h.get("reason") for h in health]
    assert "bridge lost" not in reasons, (reasons, log.read_text())
    assert all(h["status"] == "down" for h in health), health
    assert "exceeded timeout" not in gw.local.log_text()
    assert "agent-bridge-c8y" in gw.local.log_text()
    assert stuck_for > 8


def test_sigterm_stops_a_bridge_whose_cloud_connect_is_stuck(
    stuck_gateway: Gateway, tmp_path: Path
) -> None:
    gw = stuck_gateway
    log = tmp_path / "bridge.log"
    with bridge_process(gw, log, connect_timeout=60) as bridge:
        _wait_for_local_link(gw, bridge, log)
        time.sleep(1)  # the cloud connect is in the trickled handshake now
        sent = time.monotonic()
        bridge.send_signal(signal.SIGTERM)
        try:
            code = bridge.wait(TRICKLE_LIFETIME + 10)
        finally:
            took = time.monotonic() - sent
    assert code == 0, log.read_text()
    assert took < 2.5, f"the bridge took {took:.1f} s to stop"
    text = log.read_text()
    assert "unexpected" not in text and "Traceback" not in text, text


# A CONNACK header announcing 127 bytes of body, then the body, a byte at a time.
ENDLESS_CONNACK = b"\x20\x7f" + b"\x00" * 127


class _NoEvents:
    def on_message(self, session: MqttSession[None], message: Publish) -> None: ...

    def on_delivered(self, session: MqttSession[None], token: None) -> None: ...


def test_a_trickled_connack_does_not_outlast_the_connect_timeout() -> None:
    """The deadline covers CONNACK too, in total: every read gets the time left."""
    with TrickleServer(interval=0.3, lifetime=TRICKLE_LIFETIME, data=ENDLESS_CONNACK) as broker:
        endpoint = Endpoint("local", LOOPBACK, broker.port, "slow", connect_timeout=1.5)
        session: MqttSession[None] = MqttSession(endpoint, _NoEvents())
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"within the connect timeout \(1.5 s\)"):
            session.open()
        assert time.monotonic() - started < 3


def test_cancel_ends_a_stuck_connect_at_once() -> None:
    with TrickleServer(interval=0.3, lifetime=TRICKLE_LIFETIME, data=ENDLESS_CONNACK) as broker:
        endpoint = Endpoint("local", LOOPBACK, broker.port, "slow", connect_timeout=60)
        session: MqttSession[None] = MqttSession(endpoint, _NoEvents())
        attempt = ConnectAttempt()
        outcome: list[BaseException] = []

        def connect() -> None:
            try:
                session.open(attempt)
            except Exception as error:
                outcome.append(error)

        worker = threading.Thread(target=connect)
        worker.start()
        time.sleep(1)  # in the CONNACK's trickle now
        cancelled = time.monotonic()
        attempt.cancel()
        worker.join(5)
        took = time.monotonic() - cancelled
    assert [type(e) for e in outcome] == [ConnectCancelled]
    assert took < 0.5, f"cancel took {took:.2f} s"

"""The built-in bridge under load and failure (key file: the bridge does not care).

Each test runs the real `agent connect c8y`, so the bridge is the lean
runtime process that `agent bridge run` execs into.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, GatewayFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> Gateway:
    """Connected, with the device key in a PEM file."""
    gw = gateway_factory("off")
    done = gw.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    return gw


def test_qos2_crosses_both_ways_as_qos2(gateway: Gateway) -> None:
    with gateway.cloud_app() as cloud, gateway.local_client() as local:
        cloud.subscribe("s/us", qos=2)
        local.subscribe("c8y/s/ds", qos=2)
        local.publish("c8y/s/us", b"up-2", qos=2)
        cloud.publish("s/ds", b"down-2", qos=2)
        [up] = cloud.wait_for(1, "s/us", timeout=15)
        [down] = local.wait_for(1, "c8y/s/ds", timeout=15)
    assert (up.payload, up.qos) == (b"up-2", 2)
    assert (down.payload, down.qos) == (b"down-2", 2)


def test_thousands_of_messages_both_ways_none_lost(gateway: Gateway) -> None:
    outbound, inbound = 3000, 1000
    with gateway.cloud_app() as cloud, gateway.local_client() as local:
        cloud.subscribe("s/us", qos=1)
        local.subscribe("c8y/s/ds", qos=1)
        for i in range(outbound):
            local.publish("c8y/s/us", b"%05d" % i + b"x" * 95, qos=1, timeout=30)
        for i in range(inbound):
            cloud.publish("s/ds", b"%05d" % i, qos=1, timeout=30)
        cloud.wait_for(outbound, "s/us", timeout=120)
        local.wait_for(inbound, "c8y/s/ds", timeout=120)
        ups = {int(m.payload[:5]) for m in cloud.messages if m.topic == "s/us"}
        downs = {int(m.payload) for m in local.messages if m.topic == "c8y/s/ds"}
    assert ups == set(range(outbound))
    assert downs == set(range(inbound))


def test_a_payload_the_cloud_would_refuse_is_dropped_not_stuck(gateway: Gateway) -> None:
    with gateway.cloud_app() as cloud, gateway.local_client() as local:
        cloud.subscribe("s/us", qos=1)
        local.publish("c8y/s/us", b"x" * 20_000, qos=1)  # Cumulocity takes <= 16184 bytes
        local.publish("c8y/s/us", b"after", qos=1)
        [msg] = cloud.wait_for(1, "s/us", timeout=15)
    assert msg.payload == b"after"
    log = (gateway.root / "log" / "bridge-c8y.log").read_text()
    assert "dropped a 20000-byte message" in log


def test_bridge_reconnects_after_the_local_broker_restarts(gateway: Gateway) -> None:
    gateway.local.restart()
    deadline = time.monotonic() + 30
    with gateway.cloud_app() as cloud:
        cloud.subscribe("s/us", qos=1)
        while True:
            with gateway.local_client() as local:
                local.publish("c8y/s/us", b"after-restart", qos=1)
            got = [m for m in cloud.messages if m.payload == b"after-restart"]
            if got or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert got, "the bridge did not come back after the local broker restarted"


def test_the_running_bridge_is_the_lean_runtime(gateway: Gateway) -> None:
    pid = gateway.bridge_pid()
    maps = Path(f"/proc/{pid}/maps").read_text()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"edgeagent.cli.bridge_runtime" in cmdline
    # cryptography's extension is mapped, so .so files are visible here...
    assert "_rust.abi3.so" in maps
    # ...and pydantic's is not: the configuration layer stayed behind at exec.
    assert "_pydantic_core" not in maps
    # Nor Python's ssl module (TLS is tlslite on cryptography): 1.4 MB.
    assert "/_ssl." not in maps


def test_a_backlog_larger_than_the_bridge_holds_arrives_whole(gateway: Gateway) -> None:
    from edgeagent.bridge.bridge import MAX_PENDING

    count = max(4 * MAX_PENDING, 4000)  # the bridge stops reading at MAX_PENDING: TCP pushes back
    assert gateway.publish_while_the_cloud_is_away(count, timeout=120) == set(range(count))

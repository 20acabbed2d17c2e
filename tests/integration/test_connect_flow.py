"""connect / reconnect / doctor: checks first, never the bridge's session, nothing left half-done.

- The checks never log into the cloud as the device: while the bridge is
  stopped the cloud holds QoS 1 messages for the device's persistent
  session, and `doctor`, `connect` and `reconnect` hand every one of them to
  the local broker (through the bridge, the only client that ever connects
  as the device).
- `reconnect` checks first: a wrong PIN or a broken rules file leaves the
  running bridge running, and says so.
- `connect` that fails after it started the bridge stops it again; a later
  `connect` is never "already connected" to a bridge that does not work.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time

import pytest

from edgeagent import errors
from tests.support.agent_cli import exit_code
from tests.support.gateway import Gateway, process_alive
from tests.support.mosquitto import MosquittoFactory, TlsListener
from tests.support.pki import TestPki
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

DEVICE = "device-001"


def _queue_for_the_device(gw: Gateway, first: int, count: int) -> None:
    """QoS 1 messages on the cloud's s/ds while no bridge runs: the cloud queues them
    for the device's persistent session."""
    with gw.cloud_app() as cloud:
        for i in range(first, first + count):
            cloud.publish("s/ds", b"%05d" % i, qos=1)


def _device_connections(gw: Gateway) -> int:
    """How many MQTT CONNECTs the cloud saw with the device's client id."""
    return gw.cloud.log_text().count(f" as {DEVICE} (")


def _ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout + done.stderr


def test_queued_messages_survive_doctor_connect_and_reconnect(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    _ok(gateway.agent("connect", "c8y"))  # the device's session on the cloud, subscribed
    _ok(gateway.agent("disconnect", "c8y"))
    assert _device_connections(gateway) == 1

    with gateway.local_client() as local:
        local.subscribe("c8y/s/ds", qos=1)

        _queue_for_the_device(gateway, 0, 50)
        # The bridge ran here and was disconnected: doctor fails "bridge running"
        # (test_doctor_local.py), after all its checks of the cloud, none as the device.
        doctor = gateway.agent("doctor", "c8y")
        assert doctor.returncode == exit_code(errors.BridgeNotRunning), doctor.stdout
        assert "✓ TLS handshake as the device (no MQTT)" in doctor.stdout
        _ok(gateway.agent("connect", "c8y"))
        got = local.wait_for(50, "c8y/s/ds", timeout=30)
        assert sorted(int(m.payload) for m in got) == list(range(50))
        # Only the bridge connected as the device: not doctor, not connect's check.
        assert _device_connections(gateway) == 2

        _ok(gateway.agent("disconnect", "c8y"))
        _queue_for_the_device(gateway, 50, 50)
        _ok(gateway.agent("reconnect", "c8y"))
        got = local.wait_for(100, "c8y/s/ds", timeout=30)
        assert sorted(int(m.payload) for m in got) == list(range(100))
        assert _device_connections(gateway) == 3

        # A reconnect of a running bridge: its checks take nothing either.
        _ok(gateway.agent("reconnect", "c8y"))
        assert _device_connections(gateway) == 4
        _ok(gateway.agent("doctor", "c8y"))
        assert _device_connections(gateway) == 4
        _, down = gateway.exchange(b"200,c8y_Temperature,T,25", b"510,device-001")
        assert down.payload == b"510,device-001"


def _wrong_pin(gw: Gateway) -> None:
    gw.set("device.cryptoki.pin", "000000")


def _broken_rules(gw: Gateway) -> None:
    rules = gw.config_dir / "bridge" / "c8y.toml"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text('[[rule]]\ndirection = "sideways"\nlocal_prefix = "c8y/"\n')


@pytest.mark.parametrize(
    ("breakage", "error"),
    [(_wrong_pin, errors.PinIncorrect), (_broken_rules, errors.ConfigError)],
    ids=["wrong-pin", "broken-rules"],
)
def test_a_failed_check_leaves_the_running_bridge_running(
    gateway: Gateway,
    softhsm_token: SoftHsmToken,
    breakage: object,
    error: type[errors.AgentError],
) -> None:
    gateway.new_device_key(softhsm_token)
    _ok(gateway.agent("connect", "c8y"))
    pid = gateway.bridge_pid()
    breakage(gateway)  # type: ignore[operator]

    done = gateway.agent("reconnect", "c8y")

    assert done.returncode != 0
    if error is errors.PinIncorrect:
        assert done.returncode == exit_code(errors.PinIncorrect), done.stdout + done.stderr
    else:
        assert 10 <= done.returncode <= 19, done.stdout + done.stderr  # a configuration code
    assert "bridge was not stopped: it runs on as it was" in done.stderr, done.stderr
    assert "Stopping" not in done.stdout
    assert gateway.bridge_pid() == pid and process_alive(pid)
    # ... and it still carries messages.
    up, down = gateway.exchange(b"200,c8y_Temperature,T,25", b"510,device-001")
    assert (up.payload, down.payload) == (b"200,c8y_Temperature,T,25", b"510,device-001")


def test_connect_with_the_local_broker_down_starts_nothing_and_is_no_dead_end(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    gateway.local.stop()

    done = gateway.agent("connect", "c8y")

    assert done.returncode == exit_code(errors.BrokerUnreachable), done.stdout + done.stderr
    assert f"the local broker {gateway.local.host}:{gateway.local.port}" in done.stderr
    assert "mqtt.client.port" in done.stderr
    assert "Starting the bridge" not in done.stdout
    assert not (gateway.run_dir / "bridge-c8y.pid").exists()

    gateway.local.start()
    _ok(gateway.agent("connect", "c8y"))


def test_a_cloud_that_refuses_the_bridges_connect_gets_its_code_and_nothing_runs(
    gateway: Gateway,
    softhsm_token: SoftHsmToken,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
) -> None:
    """The TLS check passes; the cloud refuses CONNECT (no user name): 61, from the bridge."""
    listener = dataclasses.replace(
        TlsListener.for_server(pki.localhost_server, client_ca=pki.ca.cert_path),
        use_identity_as_username=False,
    )
    strict = mosquitto_factory(plain=False, tls=listener, name="strict-cloud")
    gateway.new_device_key(softhsm_token)
    gateway.set("c8y.url", strict.url)

    for _ in range(2):  # the second connect is the same, not "already connected"
        started = time.monotonic()
        done = gateway.agent("connect", "c8y")
        output = done.stdout + done.stderr
        assert done.returncode == exit_code(errors.BrokerRefused), output
        # The refusal came from the started bridge's own connection, at once.
        assert "Starting the bridge... ✓" in done.stdout, output
        assert "Verifying the device is connected to Cumulocity... ✗" in done.stdout, output
        assert "not authorized" in done.stderr, output
        assert "the bridge that was started has been stopped" in done.stderr, output
        assert time.monotonic() - started < 60, output  # not the 90 s health timeout
        assert not (gateway.run_dir / "bridge-c8y.pid").exists()


def test_reconnect_with_the_local_broker_down_stops_nothing(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    _ok(gateway.agent("connect", "c8y"))
    pid = gateway.bridge_pid()
    gateway.local.stop()

    done = gateway.agent("reconnect", "c8y")

    assert done.returncode == exit_code(errors.BrokerUnreachable), done.stdout + done.stderr
    assert "bridge was not stopped: it runs on as it was" in done.stderr, done.stderr
    assert gateway.bridge_pid() == pid and process_alive(pid)
    gateway.local.start()  # the bridge finds it again by itself (its back-off: up to 60 s)
    _wait_for_health_up(gateway, timeout=90)
    _, down = gateway.exchange(b"200,c8y_Temperature,T,25", b"510,device-001")
    assert down.payload == b"510,device-001"


def _wait_for_health_up(gw: Gateway, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with gw.local_client() as local:
        local.subscribe("agent/bridge/c8y/health", qos=1)
        while time.monotonic() < deadline:
            if any(json.loads(m.payload).get("status") == "up" for m in local.messages):
                return
            time.sleep(0.2)
    raise AssertionError(f"the bridge did not report up within {timeout:.0f} s")

"""Cumulocity, Azure IoT Hub and AWS IoT Core at once on one gateway.

Each cloud is its own bridge process with its own pid file, log and health
topic; connecting, reconnecting or disconnecting one leaves the others'
processes and traffic alone. Module mode: three keys on one SoftHSM2 token
(per-cloud <cloud>.device.key_uri and cert_path); socket mode: one key
shared through the signing service.
"""

from __future__ import annotations

import json

import pytest

from tests.support.clouds import AwsStandin, AzStandin
from tests.support.gateway import Gateway, GatewayFactory, issue_device_cert, process_alive
from tests.support.signing_service import P11ServerFactory
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

DEVICE = "device-001"
CLOUDS = ("c8y", "az", "aws")


def _traffic(
    gw: Gateway, az_hub: AzStandin, aws_core: AwsStandin, tag: bytes, *, skip: str = ""
) -> None:
    """One QoS 1 message each way through each connected cloud's bridge (but ``skip``)."""
    if skip != "c8y":
        up, down = gw.exchange(b"200," + tag, b"510," + tag)
        assert (up.payload, down.payload) == (b"200," + tag, b"510," + tag)
    routes = {
        "az": (
            az_hub,
            "az/messages/events/t",
            f"devices/{DEVICE}/messages/events/t",
            f"devices/{DEVICE}/messages/devicebound/m",
            "az/messages/devicebound/m",
        ),
        "aws": (
            aws_core,
            "aws/td/t",
            f"thinedge/{DEVICE}/td/t",
            f"thinedge/{DEVICE}/cmd/m",
            "aws/cmd/m",
        ),
    }
    for cloud, (standin, local_up, remote_up, remote_down, local_down) in routes.items():
        if cloud == skip:
            continue
        with standin.app() as app, gw.local_client() as local:
            app.subscribe(remote_up, qos=1)
            local.subscribe(local_down, qos=1)
            local.publish(local_up, tag, qos=1)
            app.publish(remote_down, tag, qos=1)
            assert app.wait_for(1, remote_up, timeout=15)[0].payload == tag
            assert local.wait_for(1, local_down, timeout=15)[0].payload == tag


def _health(gw: Gateway) -> dict[str, str]:
    with gw.local_client() as local:
        local.subscribe("agent/bridge/+/health", qos=1)
        got = local.wait_for(len(CLOUDS), "agent/bridge/+/health", timeout=10)
    return {m.topic.split("/")[2]: json.loads(m.payload)["status"] for m in got}


def _all_three(gw: Gateway, az_hub: AzStandin, aws_core: AwsStandin) -> dict[str, int]:
    az_hub.attach(gw)
    aws_core.attach(gw)
    for cloud in CLOUDS:
        done = gw.agent("connect", cloud)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "answers... ✓" in done.stdout
    pids = {cloud: gw.bridge_pid(cloud) for cloud in CLOUDS}
    assert len(set(pids.values())) == 3
    assert _health(gw) == {"c8y": "up", "az": "up", "aws": "up"}
    return pids


def _one_at_a_time(
    gw: Gateway, az_hub: AzStandin, aws_core: AwsStandin, pids: dict[str, int]
) -> None:
    _traffic(gw, az_hub, aws_core, b"all-three")
    # Disconnecting one: the others' processes and traffic stay.
    assert gw.agent("disconnect", "az").returncode == 0
    assert not process_alive(pids["az"])
    assert all(process_alive(pids[c]) for c in ("c8y", "aws"))
    _traffic(gw, az_hub, aws_core, b"without-az", skip="az")
    # Reconnecting one: a new process for it, the same ones for the others.
    assert gw.agent("reconnect", "aws").returncode == 0
    assert gw.bridge_pid("aws") != pids["aws"]
    assert gw.bridge_pid("c8y") == pids["c8y"] and process_alive(pids["c8y"])
    assert gw.agent("connect", "az").returncode == 0
    _traffic(gw, az_hub, aws_core, b"all-again")


def test_three_clouds_in_module_mode_each_with_its_own_key_on_one_token(
    gateway: Gateway, az_hub: AzStandin, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    for cloud in CLOUDS:
        key = softhsm_token.generate_key("ec-p256", label=f"{cloud}-key")
        gateway.set(f"{cloud}.device.key_uri", key.uri)
        gateway.set(f"{cloud}.device.cert_path", str(issue_device_cert(gateway, key, DEVICE)))
    pids = _all_three(gateway, az_hub, aws_core)
    for cloud in CLOUDS:
        log = (gateway.root / "log" / f"bridge-{cloud}.log").read_text()
        assert f"object={cloud}-key" in log, log
    _one_at_a_time(gateway, az_hub, aws_core, pids)


def test_three_clouds_in_socket_mode_sharing_one_key(
    gateway_factory: GatewayFactory,
    p11_server_factory: P11ServerFactory,
    az_hub: AzStandin,
    aws_core: AwsStandin,
    softhsm_token: SoftHsmToken,
) -> None:
    key = softhsm_token.generate_key("ec-p256", label="device-key")
    service = p11_server_factory(softhsm_token, key).start()
    gw = gateway_factory("socket", socket_path=service.socket_path)
    gw.set("device.cert_path", str(issue_device_cert(gw, key, DEVICE)))
    pids = _all_three(gw, az_hub, aws_core)
    _one_at_a_time(gw, az_hub, aws_core, pids)

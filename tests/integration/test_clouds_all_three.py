"""Cumulocity, Azure IoT Hub and AWS IoT Core at once on one gateway.

The three run in one bridge host process, a thread per cloud, each with its
own pid file, log and health topic; connecting, reconnecting or
disconnecting one leaves the others' bridges and traffic alone (a stream of
QoS 1 messages through c8y meanwhile arrives whole). Module mode: three keys
on one SoftHSM2 token (per-cloud <cloud>.device.key_uri and cert_path);
socket mode: one key shared through the signing service.
"""

from __future__ import annotations

import json
import threading
import time

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
    # One bridge host serves the three: one process, one pid in the three pid files.
    assert len(set(pids.values())) == 1
    assert int((gw.run_dir / "bridge-host.pid").read_text()) == pids["c8y"]
    assert _health(gw) == {"c8y": "up", "az": "up", "aws": "up"}
    return pids


class _Stream:
    """QoS 1 messages on c8y/s/us, one every 20 ms, until stopped: none may be lost."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with self.gw.local_client() as local:
            while not self._stop.is_set():
                local.publish("c8y/s/us", b"stream,%05d" % self.sent, qos=1, timeout=30)
                self.sent += 1
                time.sleep(0.02)

    def __enter__(self) -> _Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def _one_at_a_time(
    gw: Gateway, az_hub: AzStandin, aws_core: AwsStandin, pids: dict[str, int]
) -> None:
    _traffic(gw, az_hub, aws_core, b"all-three")
    host = pids["c8y"]
    with gw.cloud_app() as cloud:
        cloud.subscribe("s/us", qos=1)
        with _Stream(gw) as stream:
            # Disconnecting one: its thread and pid file go, the host and the others stay.
            assert gw.agent("disconnect", "az").returncode == 0
            assert not (gw.run_dir / "bridge-az.pid").exists()
            assert process_alive(host)
            assert gw.bridge_pid("c8y") == gw.bridge_pid("aws") == host
            _traffic(gw, az_hub, aws_core, b"without-az", skip="az")
            # Reconnecting one restarts only its own thread.
            assert gw.agent("reconnect", "aws").returncode == 0
            assert gw.bridge_pid("aws") == gw.bridge_pid("c8y") == host
            assert gw.agent("connect", "az").returncode == 0
            time.sleep(0.5)
        wanted = {b"stream,%05d" % i for i in range(stream.sent)}
        deadline = time.monotonic() + 60
        while not wanted <= {m.payload for m in cloud.messages} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert wanted - {m.payload for m in cloud.messages} == set()
        assert stream.sent > 20
    _traffic(gw, az_hub, aws_core, b"all-again")
    # c8y's bridge was never restarted: one start-up line in its log.
    c8y_log = (gw.root / "log" / "bridge-c8y.log").read_text()
    assert c8y_log.count("bridge for Cumulocity starting") == 1, c8y_log
    aws_log = (gw.root / "log" / "bridge-aws.log").read_text()
    assert aws_log.count("bridge for AWS IoT Core starting") == 2, aws_log


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

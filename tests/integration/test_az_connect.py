"""`agent connect az` against a stand-in Azure IoT Hub: mosquitto speaking TLS 1.2 and
nothing newer, client certificates required, a twin responder (tests/support/clouds.py).

The device key is on a SoftHSM2 token (module mode) or behind the signing
service (socket mode); every rule of az.toml is checked each way through the
real bridge, with the hub's limits: QoS 2 goes out as QoS 1 with nothing lost,
over-size messages are dropped with a warning.
"""

from __future__ import annotations

import pytest

from edgeagent import errors
from tests.support.agent_cli import exit_code
from tests.support.clouds import AzStandin
from tests.support.gateway import Gateway, GatewayFactory, issue_device_cert, process_alive
from tests.support.signing_service import P11ServerFactory
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

DEVICE = "device-001"
USER_NAME = f"localhost/{DEVICE}/?api-version=2021-04-12"


def _connected(gateway: Gateway, az_hub: AzStandin, token: SoftHsmToken) -> Gateway:
    gateway.new_device_key(token, cn=DEVICE)
    az_hub.attach(gateway)
    done = gateway.agent("connect", "az")
    assert done.returncode == 0, done.stdout + done.stderr
    return gateway


def test_connect_az_over_tls12_with_the_hubs_client_id_and_user_name(
    gateway: Gateway, az_hub: AzStandin, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token, cn=DEVICE)
    az_hub.attach(gateway)
    done = gateway.agent("connect", "az")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Connecting to Azure IoT Hub over TLS 1.2... ✓" in done.stdout
    assert "Checking that Azure IoT Hub answers... ✓" in done.stdout
    assert "✗" not in done.stdout
    # The hub saw the device id as client id and the exact user name, from the
    # bridge only: connect's own check stops before MQTT (p2 = MQTT 3.1.1, c0 =
    # persistent session).
    seen = f"as {DEVICE} (p2, c0, k60, u'{USER_NAME}')"
    assert az_hub.broker.log_text().count(seen) == 1, az_hub.broker.log_text()
    # The twin GET crossed with its request id and was answered.
    assert az_hub.twin is not None
    [request] = az_hub.twin.wait_for(1)
    assert request.topic.startswith("$iothub/twin/GET/?$rid=")
    assert request.answers[0][0].startswith("$iothub/twin/res/200/?$rid=")


def test_every_az_rule_each_way(
    gateway: Gateway, az_hub: AzStandin, softhsm_token: SoftHsmToken
) -> None:
    _connected(gateway, az_hub, softhsm_token)
    outbound = {
        "az/messages/events/temp": f"devices/{DEVICE}/messages/events/temp",
        "az/methods/res/200/?$rid=5": "$iothub/methods/res/200/?$rid=5",
        "az/twin/GET/?$rid=6": "$iothub/twin/GET/?$rid=6",
        "az/twin/PATCH/properties/reported/?$rid=7": (
            "$iothub/twin/PATCH/properties/reported/?$rid=7"
        ),
    }
    inbound = {
        f"devices/{DEVICE}/messages/devicebound/%24.to=x": "az/messages/devicebound/%24.to=x",
        "$iothub/methods/POST/reboot/?$rid=8": "az/methods/POST/reboot/?$rid=8",
        "$iothub/twin/res/200/?$rid=9": "az/twin/res/200/?$rid=9",
    }
    with az_hub.app() as hub, gateway.local_client() as local:
        for topic in (f"devices/{DEVICE}/#", "$iothub/#"):
            hub.subscribe(topic, qos=1)
        local.subscribe("az/#", qos=1)
        for source in outbound:
            local.publish(source, b"{}", qos=1)
        for source in inbound:
            hub.publish(source, b"{}", qos=1)
        for target in outbound.values():
            hub.wait_for(1, target, timeout=15)
        for target in inbound.values():
            local.wait_for(1, target, timeout=15)
        # Nothing outside the rules crosses: not another device's topics.
        local.publish("az/other/topic", b"x", qos=1)
        hub.publish("devices/other-device/messages/devicebound/x", b"x", qos=1)
        local.publish("az/messages/events/last", b"last", qos=1)
        hub.wait_for(1, f"devices/{DEVICE}/messages/events/last", timeout=15)
    assert not [m for m in hub.messages if "other/topic" in m.topic]
    assert not [m for m in local.messages if "other-device" in m.topic]


def test_qos2_goes_to_the_hub_as_qos1_and_nothing_is_lost(
    gateway: Gateway, az_hub: AzStandin, softhsm_token: SoftHsmToken
) -> None:
    _connected(gateway, az_hub, softhsm_token)
    count = 200
    with az_hub.app() as hub, gateway.local_client() as local:
        hub.subscribe(f"devices/{DEVICE}/messages/events/#", qos=2)
        for i in range(count):
            local.publish("az/messages/events/q2", b"%05d" % i, qos=2, timeout=30)
        got = hub.wait_for(count, f"devices/{DEVICE}/messages/events/q2", timeout=60)
    assert sorted(int(m.payload) for m in got) == list(range(count))
    assert {m.qos for m in got} == {1}
    # The bridge's one connection (connect's check sends no CONNECT): it never reconnected.
    assert az_hub.broker.log_text().count(f"as {DEVICE} (") == 1


def test_an_over_size_message_is_dropped_with_a_warning_and_the_rest_flows(
    gateway: Gateway, az_hub: AzStandin, softhsm_token: SoftHsmToken
) -> None:
    _connected(gateway, az_hub, softhsm_token)
    limit = 256 * 1024
    with az_hub.app() as hub, gateway.local_client() as local:
        hub.subscribe(f"devices/{DEVICE}/messages/events/#", qos=1)
        local.publish("az/messages/events/big", b"x" * (limit + 1), qos=1)
        local.publish("az/messages/events/fits", b"y" * limit, qos=1)
        [fits] = hub.wait_for(1, f"devices/{DEVICE}/messages/events/fits", timeout=30)
    assert len(fits.payload) == limit
    assert not [m for m in hub.messages if m.topic.endswith("/big")]
    log = (gateway.root / "log" / "bridge-az.log").read_text()
    assert f"dropped a {limit + 1}-byte message on 'az/messages/events/big'" in log
    assert f"at most {limit} bytes" in log


def test_a_hub_that_does_not_answer_the_twin_get(
    gateway: Gateway, az_hub: AzStandin, softhsm_token: SoftHsmToken
) -> None:
    assert az_hub.twin is not None
    az_hub.twin.silent = True
    gateway.new_device_key(softhsm_token, cn=DEVICE)
    az_hub.attach(gateway)
    done = gateway.agent("connect", "az", timeout=180)
    assert done.returncode == exit_code(errors.CloudDidNotAnswer), done.stdout + done.stderr
    assert "the TLS and MQTT session to Azure IoT Hub are up" in done.stdout + done.stderr
    assert "create the device identity in the IoT Hub" in done.stdout + done.stderr
    assert process_alive(gateway.bridge_pid("az"))


def test_connect_az_in_socket_mode(
    gateway_factory: GatewayFactory,
    p11_server_factory: P11ServerFactory,
    az_hub: AzStandin,
    softhsm_token: SoftHsmToken,
) -> None:
    key = softhsm_token.generate_key("ec-p256", label="az-key")
    service = p11_server_factory(softhsm_token, key).start()
    gw = gateway_factory("socket", socket_path=service.socket_path)
    gw.set("device.cert_path", str(issue_device_cert(gw, key, DEVICE)))
    az_hub.attach(gw)
    done = gw.agent("connect", "az")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"via the signing service at {service.socket_path}" in done.stdout
    assert "Checking that Azure IoT Hub answers... ✓" in done.stdout
    with az_hub.app() as hub, gw.local_client() as local:
        hub.subscribe(f"devices/{DEVICE}/messages/events/#", qos=1)
        local.subscribe("az/messages/devicebound/#", qos=1)
        local.publish("az/messages/events/t", b"up", qos=1)
        hub.publish(f"devices/{DEVICE}/messages/devicebound/m", b"down", qos=1)
        [up] = hub.wait_for(1, f"devices/{DEVICE}/messages/events/t", timeout=15)
        [down] = local.wait_for(1, "az/messages/devicebound/m", timeout=15)
    assert (up.payload, down.payload) == (b"up", b"down")

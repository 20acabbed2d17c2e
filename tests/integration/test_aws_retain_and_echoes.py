"""The bridge connects to the local mosquitto as a mosquitto bridge (protocol level 0x84):
live messages keep their retain flag (AWS keeps retained messages, IoT Hub and
Cumulocity do not get it) and the local broker never hands the bridge its own
messages back, so only the cloud side's echoes are expected.
"""

from __future__ import annotations

import pytest

from tests.support.clouds import AwsStandin, AzStandin
from tests.support.gateway import Gateway
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

DEVICE = "device-001"


def _connect(gw: Gateway, standin: AwsStandin | AzStandin, token: SoftHsmToken) -> None:
    gw.new_device_key(token, cn=DEVICE)
    standin.attach(gw)
    done = gw.agent("connect", standin.cloud, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_retained_local_message_is_retained_on_aws(
    gateway: Gateway, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    _connect(gateway, aws_core, softhsm_token)
    with aws_core.app() as cloud, gateway.local_client() as local:
        cloud.subscribe(f"thinedge/{DEVICE}/td/#", qos=1)
        local.publish("aws/td/state", b"on", qos=1, retain=True)
        local.publish("aws/td/live", b"not retained", qos=1)
        cloud.wait_for(1, f"thinedge/{DEVICE}/td/live", timeout=15)
    # A subscriber that comes later gets it from the cloud's retained store.
    with aws_core.app() as later:
        later.subscribe(f"thinedge/{DEVICE}/td/#", qos=1)
        [kept] = later.wait_for(1, f"thinedge/{DEVICE}/td/#", timeout=15)
    assert (kept.topic, kept.payload, kept.retain) == (f"thinedge/{DEVICE}/td/state", b"on", True)


def test_azure_gets_no_retain_flag(
    gateway: Gateway, az_hub: AzStandin, softhsm_token: SoftHsmToken
) -> None:
    _connect(gateway, az_hub, softhsm_token)
    with az_hub.app() as hub, gateway.local_client() as local:
        hub.subscribe(f"devices/{DEVICE}/messages/events/#", qos=1)
        local.publish("az/messages/events/state", b"on", qos=1, retain=True)
        [live] = hub.wait_for(1, f"devices/{DEVICE}/messages/events/state", timeout=15)
    assert live.payload == b"on"
    with az_hub.app() as later:
        later.subscribe(f"devices/{DEVICE}/messages/events/#", qos=1)
        later.publish(f"devices/{DEVICE}/messages/events/marker", b"m", qos=1)
        later.wait_for(1, f"devices/{DEVICE}/messages/events/marker", timeout=15)
    assert [m.topic for m in later.messages] == [f"devices/{DEVICE}/messages/events/marker"]


def test_a_local_message_like_one_the_cloud_just_sent_still_crosses(
    gateway: Gateway, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    # Both-way shadow rule: the cloud's message goes to the local broker, which
    # (bridge protocol) does not echo it; a device-side client then publishing
    # the same topic and payload is a new message, not an echo to drop.
    _connect(gateway, aws_core, softhsm_token)
    shadow = f"$aws/things/{DEVICE}/shadow"
    with aws_core.app() as cloud, gateway.local_client() as local:
        cloud.subscribe(f"{shadow}/#", qos=1)
        local.subscribe("aws/shadow/#", qos=1)
        cloud.publish(f"{shadow}/update", b"same", qos=1)
        local.wait_for(1, "aws/shadow/update", timeout=15)
        local.publish("aws/shadow/update", b"same", qos=1)
        got = cloud.wait_for(2, f"{shadow}/update", timeout=15)
        local.publish("aws/shadow/marker", b"m", qos=1)  # everything before it has crossed
        cloud.wait_for(1, f"{shadow}/marker", timeout=15)
        local.wait_for(1, "aws/shadow/marker", timeout=15)
    assert [m.payload for m in got] == [b"same", b"same"]
    # Nothing bounced: the cloud has its own and the device's message, the local
    # client the cloud's and its own (MQTT 3.1.1 hands a publisher its own).
    assert len([m for m in cloud.messages if m.topic == f"{shadow}/update"]) == 2
    assert len([m for m in local.messages if m.topic == "aws/shadow/update"]) == 2

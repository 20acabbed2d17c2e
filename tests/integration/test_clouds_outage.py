"""No QoS 1/2 message lost across a cloud outage, for Azure IoT Hub and AWS IoT Core.

The same check as Cumulocity's (test_bridge_behaviour.py): the stand-in cloud
broker stops, device-side clients keep publishing (QoS 1 and QoS 2, which
these clouds take as QoS 1), the cloud comes back, and every message arrives.
More than the bridge holds at once (MAX_PENDING), so the local broker's
queue and TCP back-pressure are part of it.
"""

from __future__ import annotations

import pytest

from edgeagent.bridge.bridge import MAX_PENDING
from tests.support.clouds import AwsStandin, AzStandin, CloudStandin
from tests.support.gateway import GatewayFactory

pytestmark = pytest.mark.integration

DEVICE = "device-001"
ROUTES = {
    "az": ("az/messages/events/n", f"devices/{DEVICE}/messages/events/n"),
    "aws": ("aws/td/n", f"thinedge/{DEVICE}/td/n"),
}


@pytest.mark.parametrize("cloud", ["az", "aws"])
def test_nothing_is_lost_while_the_cloud_is_away(
    cloud: str, gateway_factory: GatewayFactory, az_hub: AzStandin, aws_core: AwsStandin
) -> None:
    standin: CloudStandin = az_hub if cloud == "az" else aws_core
    gw = gateway_factory("off", cn=DEVICE)
    standin.attach(gw)
    done = gw.agent("connect", cloud)
    assert done.returncode == 0, done.stdout + done.stderr
    local_topic, remote_topic = ROUTES[cloud]
    count = 3 * MAX_PENDING
    with gw.local_client() as local:
        standin.broker.stop()
        for i in range(count):
            local.publish(local_topic, b"%05d" % i, qos=1 + i % 2, timeout=30)
        standin.broker.start()
        with standin.app() as app:
            app.subscribe(remote_topic, qos=1)
            app.wait_for(count, remote_topic, timeout=120)
            got = [int(m.payload) for m in app.messages if m.topic == remote_topic]
    assert set(got) == set(range(count))

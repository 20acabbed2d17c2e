"""AWS's rules through the real bridge between two real mosquittos: both ways, no loops.

mosquitto (MQTT 3.1.1) hands a client its own messages back when it is
subscribed to their topic, as AWS IoT Core does: under the both-way shadow
rule the bridge is subscribed, on each side, to exactly what it publishes
there. Each message must cross once and stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgeagent.bridge import echoes
from edgeagent.bridge.bridge import Bridge
from edgeagent.bridge.rules import TopicRules
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.certificate import read_device_certificate
from edgeagent.signing.file_signer import FileSigner
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_probe import MqttProbe, Received, client_tls_context
from tests.support.pki import TestPki

pytestmark = pytest.mark.integration

AWS_RULES = Path(__file__).resolve().parents[2] / "edgeagent" / "clouds" / "rules" / "aws.toml"
DEVICE = "thing-1"
SHADOW = f"$aws/things/{DEVICE}/shadow"
BRIDGE_CLIENT = "agent-bridge-aws"
QUIET = 1.5  # seconds without a new copy: a loop repeats within milliseconds


@dataclass
class RunningBridge:
    bridge: Bridge
    local: Mosquitto
    cloud: Mosquitto
    pki: TestPki

    def local_client(self) -> MqttProbe:
        return MqttProbe(self.local.host, self.local.port)

    def cloud_app(self) -> MqttProbe:
        app = self.pki.client("cloud-app")
        tls = client_tls_context(self.pki.ca.cert_path, app.cert_path, app.key_path)
        return MqttProbe(self.cloud.hostname, self.cloud.tls_port, tls=tls)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def aws_bridge(
    local_broker: Mosquitto, cloud_broker: Mosquitto, pki: TestPki
) -> Iterator[RunningBridge]:
    device = pki.client(DEVICE)
    certificate = read_device_certificate(device.cert_path)
    rules = TopicRules.load(AWS_RULES, device_id=certificate.device_id)
    signer = FileSigner(device.key_path)
    tls = TlsClientContext(signer, certificate.pem, load_trust_anchors(pki.ca.cert_path))
    local = Endpoint(
        "local", local_broker.host, local_broker.port, BRIDGE_CLIENT, connect_timeout=10.0
    )
    cloud = Endpoint("aws", cloud_broker.hostname, cloud_broker.tls_port, DEVICE, tls=tls)
    bridge = Bridge(
        local, cloud, rules, "agent/bridge/aws/health", cloud_max_qos=1, cloud_retain=True
    )
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), name="bridge-aws")
    thread.start()
    try:
        assert bridge.up.wait(30), "the bridge did not come up"
        # Subscriptions go out with the connection; wait until both brokers have them.
        _wait(lambda: f"{BRIDGE_CLIENT} 2 aws/shadow/#" in local_broker.log_text(), "local SUB")
        _wait(lambda: f"{DEVICE} 1 {SHADOW}/#" in cloud_broker.log_text(), "cloud SUB")
        yield RunningBridge(bridge, local_broker, cloud_broker, pki)
    finally:
        stop.set()
        thread.join(15)
        signer.close()
    assert not thread.is_alive()


def _settled(probe: MqttProbe, topic: str) -> list[Received]:
    """Every copy of ``topic`` the probe got, once no new one came for QUIET seconds."""
    count, quiet_since = -1, time.monotonic()
    give_up = quiet_since + 10 * QUIET  # a loop never goes quiet
    while time.monotonic() - quiet_since < QUIET and time.monotonic() < give_up:
        now = len([m for m in probe.messages if m.topic == topic])
        if now != count:
            count, quiet_since = now, time.monotonic()
        time.sleep(0.05)
    return [m for m in probe.messages if m.topic == topic]


def test_a_shadow_message_from_the_cloud_arrives_once_and_goes_no_further(
    aws_bridge: RunningBridge,
) -> None:
    with aws_bridge.cloud_app() as cloud, aws_bridge.local_client() as local:
        cloud.subscribe(f"{SHADOW}/#", qos=1)
        local.subscribe("aws/shadow/#", qos=1)
        cloud.publish(f"{SHADOW}/update/delta", b'{"state":{"on":true}}', qos=1)
        local.wait_for(1, "aws/shadow/update/delta", timeout=15)
        downs = _settled(local, "aws/shadow/update/delta")
        ups = _settled(cloud, f"{SHADOW}/update/delta")
    assert [m.payload for m in downs] == [b'{"state":{"on":true}}']
    # The cloud app sees its own message once (the broker's echo), not the bridge's.
    assert len(ups) == 1
    assert aws_bridge.bridge.forwarded == {"outbound": 0, "inbound": 1}


def test_a_shadow_message_from_the_device_arrives_once_and_goes_no_further(
    aws_bridge: RunningBridge,
) -> None:
    with aws_bridge.cloud_app() as cloud, aws_bridge.local_client() as local:
        cloud.subscribe(f"{SHADOW}/#", qos=1)
        local.subscribe("aws/shadow/#", qos=1)
        local.publish("aws/shadow/update", b'{"state":{"reported":{"t":21}}}', qos=1)
        cloud.wait_for(1, f"{SHADOW}/update", timeout=15)
        ups = _settled(cloud, f"{SHADOW}/update")
        downs = _settled(local, "aws/shadow/update")
    assert [m.payload for m in ups] == [b'{"state":{"reported":{"t":21}}}']
    assert len(downs) == 1  # the device's own copy from its broker, nothing bounced back
    assert aws_bridge.bridge.forwarded == {"outbound": 1, "inbound": 0}


def test_the_same_shadow_payload_twice_crosses_twice(aws_bridge: RunningBridge) -> None:
    # Echoes are counted, not remembered by content forever: a second
    # identical message is a message.
    with aws_bridge.cloud_app() as cloud, aws_bridge.local_client() as local:
        cloud.subscribe(f"{SHADOW}/#", qos=1)
        local.publish("aws/shadow/update", b"same", qos=1)
        cloud.wait_for(1, f"{SHADOW}/update", timeout=15)
        local.publish("aws/shadow/update", b"same", qos=1)
        cloud.wait_for(2, f"{SHADOW}/update", timeout=15)
        ups = _settled(cloud, f"{SHADOW}/update")
    assert [m.payload for m in ups] == [b"same", b"same"]


def test_test_connection_comes_back_as_connection_success(aws_bridge: RunningBridge) -> None:
    # No responder: the cloud broker hands the bridge its own message back,
    # as AWS IoT Core does, and the in-rule renames it.
    with aws_bridge.local_client() as local:
        local.subscribe("aws/connection-success", qos=1)
        local.publish("aws/test-connection", b"probe-1", qos=1)
        [answer] = local.wait_for(1, "aws/connection-success", timeout=15)
        copies = _settled(local, "aws/connection-success")
    assert answer.payload == b"probe-1"
    assert len(copies) == 1
    assert aws_bridge.bridge.forwarded == {"outbound": 1, "inbound": 1}


@pytest.fixture
def short_echo_window(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(echoes, "WINDOW", 1.0)
    return 1.0


def test_a_shadow_message_held_through_a_cloud_outage_is_not_bounced_back(
    short_echo_window: float, aws_bridge: RunningBridge
) -> None:
    bridge = aws_bridge.bridge
    with aws_bridge.local_client() as local:
        local.subscribe("aws/shadow/#", qos=1)
        aws_bridge.cloud.stop()
        _wait(lambda: not bridge.cloud.up, "the bridge to see the cloud gone")
        local.publish("aws/shadow/update", b"during the outage", qos=1)
        _wait(lambda: bridge.cloud.backlog == 1, "the bridge holding the message")
        time.sleep(2.5 * short_echo_window)  # longer than an echo is waited for
        aws_bridge.cloud.start()
        _wait(lambda: bridge.cloud.up and bridge.cloud.backlog == 0, "delivery", timeout=30)
        copies = _settled(local, "aws/shadow/update")
    assert len(copies) == 1  # the device's own, from its broker: nothing came back
    assert bridge.forwarded == {"outbound": 1, "inbound": 0}

"""Issue 13 part 9: a flood of cloud messages on topics outside the rules, through real brokers.

The attack: the cloud side delivers 50,000 messages the rules do not cover
(here through a subscription left in the bridge's persistent cloud session,
as an earlier configuration leaves one). Each was one warning line: 13.6 MB
of log in 2 s. Now each topic gets one line per interval and a count.
"""

from __future__ import annotations

import re

import pytest

from tests.support.gateway import Gateway, GatewayFactory
from tests.support.mqtt_probe import MqttProbe, client_tls_context

pytestmark = pytest.mark.integration

FLOOD = 50_000
TOPICS = ("flood/a", "flood/b", "flood/c", "flood/d", "flood/e")


def _leave_a_subscription_in_the_bridges_session(gateway: Gateway, topic: str) -> None:
    """Subscribe as the bridge's client id (the device id) with a persistent session."""
    device = gateway.pki.client("device-001")
    tls = client_tls_context(gateway.pki.ca.cert_path, device.cert_path, device.key_path)
    probe = MqttProbe(
        gateway.cloud.hostname,
        gateway.cloud.tls_port,
        tls=tls,
        client_id="device-001",
        clean_session=False,
    )
    with probe:
        probe.subscribe(topic, qos=1)


def test_a_flood_on_unmatched_topics_leaves_a_small_log_with_the_count(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory("off")
    _leave_a_subscription_in_the_bridges_session(gateway, "flood/#")
    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    log_file = gateway.root / "log" / "bridge-c8y.log"
    before = log_file.stat().st_size
    with gateway.cloud_app() as cloud, gateway.local_client() as local:
        local.subscribe("c8y/s/ds", qos=1)
        for i in range(FLOOD):
            cloud.publish(TOPICS[i % len(TOPICS)], b"%d" % i, qos=0)
        # The same connection, after the flood: once it arrives, the bridge
        # has read every flood message before it.
        cloud.publish("s/ds", b"after the flood", qos=1, timeout=60)
        local.wait_for(1, "c8y/s/ds", timeout=120)
    stopped = gateway.agent("disconnect", "c8y")  # the bridge reports its counts on the way out
    assert stopped.returncode == 0, stopped.stderr
    text = log_file.read_text()
    grown = log_file.stat().st_size - before
    assert grown < 20_000, f"the log grew by {grown} bytes"
    firsts = [t for t in TOPICS if f"no inbound rule for topic {t!r}; dropped\n" in text]
    assert firsts == list(TOPICS)
    counts = [
        int(n) for n in re.findall(r"no inbound rule for topic '[^']+'; dropped \((\d+) more", text)
    ]
    reported = sum(counts) + len(TOPICS)
    # QoS 0: the broker may drop a few under load, never invent any.
    assert FLOOD * 0.9 <= reported <= FLOOD, text[-2000:]

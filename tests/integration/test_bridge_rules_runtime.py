"""A user's own rules file, in the [[rule]] form, through the real `agent connect c8y`.

The bridge runtime binds {device_id} to the device certificate's CN; a
rules file it cannot use stops the bridge with the file, the rule and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, new_gateway
from tests.support.mosquitto import Mosquitto
from tests.support.pki import TestPki

pytestmark = pytest.mark.integration

DEVICE = "device-042"


@pytest.fixture
def gateway(
    tmp_path: Path, local_broker: Mosquitto, cloud_broker: Mosquitto, pki: TestPki
) -> Iterator[Gateway]:
    gw = new_gateway(tmp_path, local_broker, cloud_broker, pki)
    device = pki.client(DEVICE)
    gw.set("device.cryptoki.mode", "off")
    gw.set("device.key_path", str(device.key_path))
    gw.set("device.cert_path", str(device.cert_path))
    (gw.config_dir / "bridge").mkdir()
    yield gw
    gw.agent("disconnect", "c8y")


def test_a_users_rule_with_the_device_id_maps_through_the_running_bridge(
    gateway: Gateway,
) -> None:
    (gateway.config_dir / "bridge" / "c8y.toml").write_text(
        'local_prefix = "c8y/"\n'
        'remote_prefix = ""\n'
        'inbound = ["s/ds"]\n'
        "\n"
        "[[rule]]\n"
        'direction = "out"\n'
        'local_prefix = "c8y/mine"\n'
        'remote_prefix = "devices/{device_id}/mine"\n'
        'topic = ""\n'
    )
    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    with gateway.cloud_app() as cloud, gateway.local_client() as local:
        cloud.subscribe("#", qos=1)
        local.subscribe("c8y/s/ds", qos=1)
        local.publish("c8y/mine", b"renamed", qos=1)
        local.publish("c8y/s/us", b"not in this file", qos=1)
        cloud.publish("s/ds", b"down", qos=1)
        [up] = cloud.wait_for(1, f"devices/{DEVICE}/mine", timeout=15)
        [down] = local.wait_for(1, "c8y/s/ds", timeout=15)
    assert (up.payload, down.payload) == (b"renamed", b"down")
    assert "s/us" not in [m.topic for m in cloud.messages]


def test_a_rules_file_the_bridge_cannot_use_is_reported_with_its_fix(gateway: Gateway) -> None:
    rules = gateway.config_dir / "bridge" / "c8y.toml"
    rules.write_text(
        'local_prefix = "c8y"\nremote_prefix = ""\n[[rule]]\ndirection = "out"\ntopic = "s/us"\n'
    )
    done = gateway.agent("connect", "c8y")
    # connect reads the rules with the device id before it starts the bridge:
    # the configuration's exit code and message, and no bridge left behind.
    assert done.returncode == 19, done.stdout + done.stderr
    assert "Reading the bridge rules... ✗" in done.stdout
    assert not (gateway.run_dir / "bridge-c8y.pid").exists()
    message = done.stdout + done.stderr
    assert f"bridge rules {rules}, [[rule]] 1 (topic 's/us')" in message
    assert "local_prefix 'c8y' does not end with '/'" in message
    assert 'write local_prefix = "c8y/"' in message

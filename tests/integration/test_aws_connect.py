"""`agent connect aws` against a stand-in AWS IoT Core (tests/support/clouds.py):
mosquitto with TLS 1.3 and the thing policy for the "8883" endpoint, and an
ALPN front (integration/standin AlpnFront) on port 443.

The broker itself echoes the test-connection message to the thing, as AWS
does; a policy that does not let the thing receive it is an account where
the thing is not allowed: connect's check fails with its own exit code.
"""

from __future__ import annotations

import subprocess

import pytest

from edgeagent import errors
from integration.standin import AWS_MQTT_ALPN
from tests.support.agent_cli import exit_code
from tests.support.clouds import AwsStandin
from tests.support.gateway import Gateway, process_alive
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

THING = "thing-001"
HTTPS = 443


def _connect(
    gateway: Gateway, aws_core: AwsStandin, token: SoftHsmToken, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    gateway.new_device_key(token, cn=THING)
    aws_core.attach(gateway, url)
    return gateway.agent("connect", "aws", timeout=180)


def test_connect_aws_on_8883_as_the_thing_and_the_test_message_comes_back(
    gateway: Gateway, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    done = _connect(gateway, aws_core, softhsm_token)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Connecting to AWS IoT Core over TLS 1.3... ✓" in done.stdout
    assert "Checking that AWS IoT Core answers... ✓" in done.stdout
    assert f"as {THING} (p2, c0, k60" in aws_core.broker.log_text()


def test_every_aws_rule_each_way(
    gateway: Gateway, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    assert _connect(gateway, aws_core, softhsm_token).returncode == 0
    shadow = f"$aws/things/{THING}/shadow"
    with aws_core.app() as cloud, gateway.local_client() as local:
        cloud.subscribe(f"thinedge/{THING}/#", qos=1)
        cloud.subscribe(f"{shadow}/#", qos=1)
        local.subscribe("aws/#", qos=1)
        local.publish("aws/td/temp", b"21", qos=1)
        local.publish("aws/shadow/update", b'{"state": {}}', qos=1)
        cloud.publish(f"thinedge/{THING}/cmd/reboot", b"now", qos=1)
        cloud.publish(f"{shadow}/update/accepted", b"{}", qos=1)
        [td] = cloud.wait_for(1, f"thinedge/{THING}/td/temp", timeout=15)
        [up] = cloud.wait_for(1, f"{shadow}/update", timeout=15)
        [cmd] = local.wait_for(1, "aws/cmd/reboot", timeout=15)
        [down] = local.wait_for(1, "aws/shadow/update/accepted", timeout=15)
        # The test-connection topic: out under its own name, back as connection-success.
        local.publish("aws/test-connection", b"ping-1", qos=1)
        [echo] = local.wait_for(1, "aws/connection-success", timeout=15)
        # Both-way rule: nothing bounced back (each arrived once on each side).
        local.publish("aws/td/last", b"last", qos=1)
        cloud.wait_for(1, f"thinedge/{THING}/td/last", timeout=15)
    assert (td.payload, up.payload, cmd.payload, down.payload) == (
        b"21",
        b'{"state": {}}',
        b"now",
        b"{}",
    )
    assert echo.payload == b"ping-1"
    assert len([m for m in cloud.messages if m.topic == f"{shadow}/update"]) == 1
    assert len([m for m in local.messages if m.topic == "aws/shadow/update/accepted"]) == 1


def test_qos2_goes_to_aws_as_qos1_and_nothing_is_lost(
    gateway: Gateway, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    assert _connect(gateway, aws_core, softhsm_token).returncode == 0
    count = 200
    with aws_core.app() as cloud, gateway.local_client() as local:
        cloud.subscribe(f"thinedge/{THING}/td/#", qos=2)
        for i in range(count):
            local.publish("aws/td/q2", b"%05d" % i, qos=2, timeout=30)
        got = cloud.wait_for(count, f"thinedge/{THING}/td/q2", timeout=60)
    assert sorted(int(m.payload) for m in got) == list(range(count))
    assert {m.qos for m in got} == {1}


def test_an_over_size_message_for_aws_is_dropped_with_a_warning(
    gateway: Gateway, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    assert _connect(gateway, aws_core, softhsm_token).returncode == 0
    limit = 128 * 1024
    with aws_core.app() as cloud, gateway.local_client() as local:
        cloud.subscribe(f"thinedge/{THING}/td/#", qos=1)
        local.publish("aws/td/big", b"x" * (limit + 1), qos=1)
        local.publish("aws/td/fits", b"y" * limit, qos=1)
        [fits] = cloud.wait_for(1, f"thinedge/{THING}/td/fits", timeout=30)
    assert len(fits.payload) == limit
    assert not [m for m in cloud.messages if m.topic.endswith("/big")]
    log = (gateway.root / "log" / "bridge-aws.log").read_text()
    assert f"dropped a {limit + 1}-byte message on 'aws/td/big'" in log


def test_a_policy_that_withholds_the_answer(
    gateway: Gateway, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    aws_core.reload_policy(silent=True)
    done = _connect(gateway, aws_core, softhsm_token)
    assert done.returncode == exit_code(errors.CloudDidNotAnswer), done.stdout + done.stderr
    message = done.stdout + done.stderr
    assert "the TLS and MQTT session to AWS IoT Core are up" in message
    assert "3 attempt(s)" in message and "The bridge keeps running." in message
    assert "create the thing" in message
    assert process_alive(gateway.bridge_pid("aws"))


def test_port_443_negotiates_the_aws_alpn_with_sni(
    gateway: Gateway, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    with aws_core.front(port=HTTPS) as front:
        done = _connect(gateway, aws_core, softhsm_token, url=f"localhost:{HTTPS}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Checking that AWS IoT Core answers... ✓" in done.stdout
        relayed = [c for c in front.connections if c.relayed]
    assert relayed, front.connections
    assert {(c.alpn, c.server_name, c.client_cn) for c in relayed} == {
        (AWS_MQTT_ALPN, "localhost", THING)
    }


def test_a_server_on_443_that_selects_no_alpn_is_refused(
    gateway: Gateway, aws_core: AwsStandin, softhsm_token: SoftHsmToken
) -> None:
    with aws_core.front(port=HTTPS, alpn=None) as front:
        done = _connect(gateway, aws_core, softhsm_token, url=f"localhost:{HTTPS}")
    assert done.returncode == exit_code(errors.AlpnNotSelected) == 58, done.stdout + done.stderr
    message = done.stdout + done.stderr
    assert "did not select the ALPN protocol x-amzn-mqtt-ca (it selected none)" in message
    assert not (gateway.run_dir / "bridge-aws.pid").exists()
    assert front.connections

"""`agent connect` proves the cloud answers: a request through the bridge and its answer.

Cumulocity's stand-in (integration/standin CumulocityResponder, started by
the gateway factory on the stand-in cloud broker) answers an empty s/uat with
71,<JWT> on s/dat, as the platform does; silent, it is a tenant where the
device is not registered: the TLS and MQTT session are up, no answer comes.
"""

from __future__ import annotations

import pytest

from edgeagent import errors
from tests.support.agent_cli import exit_code
from tests.support.gateway import Gateway, process_alive
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration


def test_connect_ends_with_the_clouds_answer(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    assert gateway.c8y_responder is not None
    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-2:][0].startswith("Checking that Cumulocity answers... ✓")
    assert "round trip:" in done.stdout.splitlines()[-1]
    # The request crossed the bridge to the cloud's own topic, and was answered.
    [exchange] = gateway.c8y_responder.wait_for(1)
    assert (exchange.topic, exchange.payload) == ("s/uat", b"")
    assert exchange.answers[0][0] == "s/dat" and exchange.answers[0][1].startswith(b"71,")


def test_a_cloud_that_does_not_answer_has_its_own_exit_code_and_the_bridge_stays(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    assert gateway.c8y_responder is not None
    gateway.c8y_responder.silent = True
    done = gateway.agent("connect", "c8y", timeout=180)
    assert done.returncode == exit_code(errors.CloudDidNotAnswer) == 62, done.stdout + done.stderr
    assert "Checking that Cumulocity answers... ✗" in done.stdout
    message = done.stdout + done.stderr
    assert "the TLS and MQTT session to Cumulocity are up" in message
    assert "not registered" in message and "The bridge keeps running." in message
    assert message.count("keeps running") == 1  # said once, the note only names the bridge
    assert "note: the Cumulocity bridge: pid " in done.stderr and "agent disconnect c8y" in message
    assert "register the device (or its CA) in the Cumulocity tenant" in message
    # The request did reach the cloud: it is the cloud that kept quiet.
    assert gateway.c8y_responder.wait_for(1)[0].topic == "s/uat"
    assert process_alive(gateway.bridge_pid("c8y"))
    up, down = gateway.exchange(b"200,c8y_Temperature,T,25", b"510,device-001")
    assert (up.payload, down.payload) == (b"200,c8y_Temperature,T,25", b"510,device-001")


def test_doctor_ends_with_the_round_trip_through_the_running_bridge(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    assert gateway.c8y_responder is not None
    assert gateway.agent("connect", "c8y").returncode == 0
    done = gateway.agent("doctor", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    last = [line.strip() for line in done.stdout.splitlines()][-2]
    assert last.startswith("✓ Cumulocity answers: round trip"), done.stdout
    assert last.endswith("ms through the running bridge")
    assert "All checks passed." in done.stdout

    gateway.c8y_responder.silent = True
    done = gateway.agent("doctor", "c8y", timeout=180)
    assert done.returncode == exit_code(errors.CloudDidNotAnswer), done.stdout + done.stderr
    assert "✗ Cumulocity answers" in done.stdout
    assert "register the device (or its CA) in the Cumulocity tenant" in done.stdout

"""`agent doctor <cloud>` checks the gateway's side too: the local broker and the bridge.

Before, doctor said "All checks passed" with the local broker down. Now the
local broker must answer a real MQTT CONNECT (throw-away client id, clean
session), and a bridge that ran here and does not run now is a failure with
the fix `agent connect <cloud>`; a cloud never connected here is "not checked".
"""

from __future__ import annotations

import pytest

from edgeagent import errors
from tests.support.agent_cli import exit_code
from tests.support.gateway import Gateway
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

# `gateway` (tests/support/gateway.py): module mode on `softhsm_token`, no key yet.


def checks(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip()[:1] in "✓✗-"]


def test_the_local_broker_down_fails_doctor(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    gateway.local.stop()
    done = gateway.agent("doctor", "c8y")
    assert done.returncode == exit_code(errors.BrokerUnreachable), done.stdout + done.stderr
    assert checks(done.stdout)[-1] == "✗ local broker answers"
    assert f"error: the local broker {gateway.local.host}:{gateway.local.port} is unreachable" in (
        done.stdout
    )
    assert "fix: start the local broker" in done.stdout
    assert "All checks passed" not in done.stdout


def test_the_local_broker_gets_a_throwaway_clean_session(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    done = gateway.agent("doctor", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = [c for c in checks(done.stdout) if "local broker answers" in c]
    client_id = line.rsplit("CONNACK as ", 1)[1]
    assert client_id.startswith("agent-doctor-")
    # mosquitto logs "(p2, c1, k10)": clean session on, nothing left behind.
    assert f"as {client_id} (p2, c1," in gateway.local.log_text()


def test_a_bridge_that_ran_and_stopped_fails_doctor(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    assert gateway.agent("connect", "c8y").returncode == 0
    done = gateway.agent("doctor", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ Cumulocity bridge running: pid {gateway.bridge_pid()} since " in done.stdout
    assert "All checks passed." in done.stdout

    assert gateway.agent("disconnect", "c8y").returncode == 0
    done = gateway.agent("doctor", "c8y")
    assert done.returncode == exit_code(errors.BridgeNotRunning), done.stdout + done.stderr
    assert checks(done.stdout)[-1] == "✗ Cumulocity bridge running"
    assert "error: the Cumulocity bridge is not running (last ran until " in done.stdout
    assert "fix: agent connect c8y" in done.stdout

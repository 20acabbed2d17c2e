"""`agent doctor c8y`: one line per link; the first broken link, its fix, its exit code."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from edgeagent import errors
from tests.support.agent_cli import exit_code
from tests.support.gateway import Gateway
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

ALL_STEPS = [
    "configuration read",
    "PKCS#11 module loads",
    "token present",
    "login",
    "key found and unique",
    "key origin (device.key_policy)",
    "certificate matches the key and is valid now",
    "bridge rules read",
    "cloud host resolves",
    "TLS handshake as the device (no MQTT)",
    "local broker answers",
]


# `gateway` (tests/support/gateway.py): module mode on `softhsm_token`, no key yet.


def lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip()[:1] in "✓✗"]


def test_a_healthy_chain_passes_every_step(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    done = gateway.agent("doctor", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = lines(done.stdout)
    assert [s[2:].split(":")[0] for s in steps] == ALL_STEPS
    assert all(s.startswith("✓") for s in steps)
    # The MQTT connection and the cloud answering are the running bridge's
    # (test_clouds_round_trip.py, test_connect_flow.py).
    mqtt = "- MQTT connection (the running bridge's): not checked: the Cumulocity bridge is not"
    assert mqtt in done.stdout
    assert "- Cumulocity answers: not checked: the Cumulocity bridge is not running" in done.stdout
    # Never connected here: the bridge not running is not a failure (test_doctor_local.py).
    assert "- Cumulocity bridge running: not checked: the Cumulocity bridge has never run" in (
        done.stdout
    )
    assert "All checks passed; 3 not checked." in done.stdout


def _fails_at(done: object, step: str) -> None:
    output = done.stdout  # type: ignore[attr-defined]
    steps = lines(output)
    assert steps[-1] == f"✗ {step}", output
    assert all(s.startswith("✓") for s in steps[:-1])
    assert "fix:" in output


def test_wrong_pin_fails_at_login(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    gateway.set("device.cryptoki.pin", "000000")
    done = gateway.agent("doctor", "c8y")
    _fails_at(done, "login")
    assert done.returncode == exit_code(errors.PinIncorrect)


def test_missing_module_fails_at_module(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    gateway.set("device.cryptoki.module_path", "/usr/lib/no-such-pkcs11.so")
    done = gateway.agent("doctor", "c8y")
    _fails_at(done, "PKCS#11 module loads")
    assert done.returncode == exit_code(errors.ModuleLoadError)


def test_a_missing_root_ca_is_named_by_its_key(
    gateway: Gateway, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    gateway.new_device_key(softhsm_token)
    missing = tmp_path / "no-such-ca.pem"
    gateway.set("c8y.root_cert_path", str(missing))
    done = gateway.agent("doctor", "c8y")
    assert done.returncode == exit_code(errors.RootCertificatesUnreadable), done.stdout
    # As connect says it: the key the path came from, not "the cloud's root_cert_path".
    assert f"{missing} (c8y.root_cert_path) does not exist" in done.stdout, done.stdout
    assert "fix: set c8y.root_cert_path to" in done.stdout
    assert "the cloud's root_cert_path" not in done.stdout


def test_ambiguous_key_uri_fails_doctor(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    softhsm_token.generate_key("ec-p256", label="second")
    gateway.set("device.key_uri", softhsm_token.uri)
    done = gateway.agent("doctor", "c8y")
    _fails_at(done, "key found and unique")
    assert "object=second" in done.stdout and "object=device-key" in done.stdout


def test_expired_device_certificate_fails(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    now = datetime.datetime.now(datetime.UTC)
    gateway.new_device_key(
        softhsm_token,
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )
    done = gateway.agent("doctor", "c8y")
    _fails_at(done, "certificate matches the key and is valid now")
    assert done.returncode == exit_code(errors.CertificateNotValidNow)


def test_cloud_down_fails_at_the_handshake(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    gateway.cloud.stop()
    done = gateway.agent("doctor", "c8y")
    _fails_at(done, "TLS handshake as the device (no MQTT)")
    assert done.returncode == exit_code(errors.BrokerUnreachable)

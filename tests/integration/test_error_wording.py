"""Errors say where a value came from, with the real `agent` and a real SoftHSM2 token.

Issue 12 part 8: a wrong PIN from AGENT_DEVICE_CRYPTOKI_PIN names the
variable (not only the key), whichever command logged in; a root CA file
that is not there is its own error (exit 17), not the device certificate's
(40). The wrong-CA wording against a real broker is in test_connect_c8y.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from edgeagent import errors
from tests.support.agent_cli import exit_code, run_agent
from tests.support.softhsm import SOFTHSM_MODULE

pytestmark = pytest.mark.integration

PIN = "246810"
WRONG = "999999"
PIN_VARIABLE = "AGENT_DEVICE_CRYPTOKI_PIN"


class Device:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_dir = root / "etc-agent"
        (root / "tokens").mkdir()
        conf = root / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {root / 'tokens'}\n")
        self.env = {"SOFTHSM2_CONF": str(conf)}

    def agent(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_agent(*args, config_dir=self.config_dir, env={**self.env, **(env or {})})

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = self.agent(*args, env=env)
        assert done.returncode == 0, f"agent {' '.join(args)}: {done.stderr}"
        return done.stdout


@pytest.fixture
def device(tmp_path: Path) -> Device:
    """A SoftHSM2 token with a key and a self-signed certificate; no PIN in agent.toml."""
    dev = Device(tmp_path)
    dev.ok("config", "set", "device.cryptoki.mode", "module")
    dev.ok("config", "set", "device.cryptoki.module_path", str(SOFTHSM_MODULE))
    for name, text in (("so", "12345678"), ("pin", PIN)):
        (tmp_path / name).write_text(text + "\n")
        os.chmod(tmp_path / name, 0o600)
    dev.ok(
        "hsm", "init", "--token-label", "words", "--so-pin-file", str(tmp_path / "so"),
        "--pin-file", str(tmp_path / "pin"),
    )  # fmt: skip
    dev.ok("hsm", "create-key", "--pin-file", str(tmp_path / "pin"))
    dev.ok("cert", "create", "--device-id", "words-1")
    dev.ok("config", "unset", "device.cryptoki.pin")  # from now on: the environment's
    return dev


def test_a_wrong_pin_from_the_environment_names_the_variable(device: Device) -> None:
    wrong = {PIN_VARIABLE: WRONG}
    for command in (
        ("cert", "create-csr", "--device-id", "words-1"),
        ("hsm", "create-key", "--label", "second"),
    ):
        done = device.agent(*command, env=wrong)
        assert done.returncode == exit_code(errors.PinIncorrect), done.stderr
        assert f"fix: check {PIN_VARIABLE} (environment, device.cryptoki.pin)" in done.stderr, (
            command,
            done.stderr,
        )
        assert WRONG not in done.stderr + done.stdout
    # The right PIN from the same variable works: the variable was the one to fix.
    device.ok("cert", "create-csr", "--device-id", "words-1", env={PIN_VARIABLE: PIN})


def test_a_wrong_pin_from_the_file_names_the_key_only(device: Device) -> None:
    done = run_agent(
        "config", "set", "device.cryptoki.pin", "-", config_dir=device.config_dir, stdin=WRONG
    )
    assert done.returncode == 0, done.stderr
    failed = device.agent("cert", "create-csr", "--device-id", "words-1")
    assert failed.returncode == exit_code(errors.PinIncorrect), failed.stderr
    assert "fix: check device.cryptoki.pin;" in failed.stderr
    assert PIN_VARIABLE not in failed.stderr


def test_a_missing_root_ca_file_is_its_own_error(device: Device) -> None:
    device.ok("config", "set", "c8y.url", "localhost:1")  # never dialled
    missing = device.root / "no-such-ca.pem"
    done = device.agent("config", "set", "c8y.root_cert_path", str(missing))
    assert done.returncode == 0 and "does not exist (yet)" in done.stderr
    connect = device.agent("connect", "c8y", env={PIN_VARIABLE: PIN})
    assert connect.returncode == exit_code(errors.RootCertificatesUnreadable) == 17, (
        connect.stdout + connect.stderr
    )
    assert f"the trusted CA file {missing} (c8y.root_cert_path) does not exist" in connect.stderr
    assert "device certificate" not in connect.stderr


def test_config_get_says_a_value_comes_from_the_environment(device: Device) -> None:
    done = device.agent("config", "get", "mqtt.client.port", env={"AGENT_MQTT_CLIENT_PORT": "1999"})
    assert done.stdout == "1999\n"
    assert "AGENT_MQTT_CLIENT_PORT" in done.stderr and "environment" in done.stderr
    plain = device.agent("config", "get", "device.cryptoki.mode")
    assert (plain.stdout, plain.stderr) == ("module\n", "")

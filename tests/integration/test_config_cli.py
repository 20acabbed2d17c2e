"""The real `agent config ...` command, run as a user would."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.agent_cli import run_agent


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "etc-agent"


def test_user_story_set_get_list(config_dir):
    d = ["--config-dir", str(config_dir)]
    for key, value in [
        ("device.cryptoki.mode", "module"),
        ("device.cryptoki.module_path", "/usr/lib/softhsm/libsofthsm2.so"),
        ("device.key_uri", "pkcs11:token=my-token;object=my-key"),
        ("c8y.url", "example.cumulocity.com"),
    ]:
        result = run_agent(*d, "config", "set", key, value)
        assert result.returncode == 0, result.stderr
    result = run_agent(*d, "config", "set", "device.cryptoki.pin", "-", stdin="123456\n")
    assert result.returncode == 0, result.stderr
    assert (config_dir / "agent.toml").stat().st_mode & 0o777 == 0o600

    result = run_agent(*d, "config", "get", "device.key_uri")
    assert (result.returncode, result.stdout) == (0, "pkcs11:token=my-token;object=my-key\n")

    result = run_agent(*d, "config", "list")
    assert result.returncode == 0
    assert "device.cryptoki.pin=<hidden>\n" in result.stdout
    assert "123456" not in result.stdout + result.stderr

    result = run_agent(*d, "config", "get", "device.cryptoki.pin", "--reveal")
    assert result.stdout == "123456\n"


def test_agent_config_dir_variable(config_dir):
    env = {"AGENT_CONFIG_DIR": str(config_dir)}
    assert run_agent("config", "set", "mqtt.client.port", "1884", env=env).returncode == 0
    assert "port = 1884" in (config_dir / "agent.toml").read_text()
    assert run_agent("config", "get", "mqtt.client.port", env=env).stdout == "1884\n"
    # An environment override wins; an empty one is ignored.
    overridden = {**env, "AGENT_MQTT_CLIENT_PORT": "1999"}
    assert run_agent("config", "get", "mqtt.client.port", env=overridden).stdout == "1999\n"
    empty = {**env, "AGENT_MQTT_CLIENT_PORT": ""}
    assert run_agent("config", "get", "mqtt.client.port", env=empty).stdout == "1884\n"


def test_refused_set_exits_non_zero_and_leaves_the_file(config_dir):
    d = ["--config-dir", str(config_dir)]
    assert run_agent(*d, "config", "set", "c8y.url", "example.cumulocity.com").returncode == 0
    path = config_dir / "agent.toml"
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    result = run_agent(*d, "config", "set", "device.cryptoki.mode", "hsm")
    assert result.returncode == 12
    assert "device.cryptoki.mode" in result.stderr
    assert "off, module, socket" in result.stderr

    result = run_agent(*d, "config", "set", "c8y.ulr", "x")
    assert result.returncode == 11
    assert "did you mean c8y.url" in result.stderr
    assert "agent config list --doc" in result.stderr

    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_syntax_error_is_reported_with_line_and_column(config_dir):
    config_dir.mkdir()
    path = config_dir / "agent.toml"
    path.write_text('[c8y]\nurl = "unterminated\n')
    before = path.read_bytes()
    result = run_agent("--config-dir", str(config_dir), "config", "set", "mqtt.client.port", "1")
    assert result.returncode == 10
    assert f"{path}:2:" in result.stderr
    assert path.read_bytes() == before


def test_list_doc(config_dir):
    d = ["--config-dir", str(config_dir)]
    result = run_agent(*d, "config", "list", "--doc", "device.cryptoki")
    assert result.returncode == 0
    for key in ("mode", "module_path", "pin", "uri", "socket_path"):
        assert f"device.cryptoki.{key}\n" in result.stdout
        assert f"env:     AGENT_DEVICE_CRYPTOKI_{key.upper()}" in result.stdout
    assert "one of: off, module, socket" in result.stdout

"""AGENT_* environment overrides: naming, precedence, empty = unset, errors."""

from __future__ import annotations

import pytest

from edgeagent.config import AgentConfig, get, list_values, load_config, set_value
from edgeagent.config.sources import AgentEnvSource
from edgeagent.errors import InvalidConfigValue

pytestmark = pytest.mark.usefixtures("no_agent_environment")


def test_env_names_map_to_keys():
    found = AgentEnvSource(
        AgentConfig, {"AGENT_C8Y_DEVICE_KEY_URI": "pkcs11:token=x", "AGENT_NOPE": "1"}
    )
    assert found.keys == {"c8y.device.key_uri"}
    assert found() == {"c8y": {"device": {"key_uri": "pkcs11:token=x"}}}


def test_env_beats_file_beats_default(tmp_path):
    set_value(tmp_path, "mqtt.client.port", "1884")
    set_value(tmp_path, "mqtt.client.host", "broker.local")
    cfg = load_config(tmp_path, {"AGENT_MQTT_CLIENT_PORT": "1885"})
    assert cfg.mqtt.client.port == 1885  # env over file
    assert cfg.mqtt.client.host == "broker.local"  # file over default
    assert cfg.device.cryptoki.mode == "off"  # default


def test_env_works_without_a_file(tmp_path):
    cfg = load_config(tmp_path, {"AGENT_DEVICE_CRYPTOKI_MODE": "socket"})
    assert cfg.device.cryptoki.mode == "socket"


def test_process_environment_is_read_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENT_C8Y_URL", "tenant.example.com")
    assert load_config(tmp_path).c8y.url == "tenant.example.com"
    assert get(tmp_path, "c8y.url") == "tenant.example.com"


def test_empty_env_var_means_unset_not_empty(tmp_path):
    set_value(tmp_path, "device.cryptoki.pin", "1234")
    cfg = load_config(tmp_path, {"AGENT_DEVICE_CRYPTOKI_PIN": ""})
    assert cfg.device.cryptoki.pin is not None
    assert cfg.device.cryptoki.pin.get_secret_value() == "1234"
    assert (
        load_config(tmp_path / "none", {"AGENT_DEVICE_CRYPTOKI_PIN": ""}).device.cryptoki.pin
        is None
    )


def test_pin_from_env(tmp_path):
    cfg = load_config(tmp_path, {"AGENT_DEVICE_CRYPTOKI_PIN": "0042"})
    assert cfg.device.cryptoki.pin is not None
    assert cfg.device.cryptoki.pin.get_secret_value() == "0042"


def test_bool_from_env(tmp_path):
    assert (
        load_config(tmp_path, {"AGENT_MQTT_BRIDGE_BUILT_IN": "false"}).mqtt.bridge.built_in is False
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENT_MQTT_CLIENT_PORT", "70000"),
        ("AGENT_DEVICE_CRYPTOKI_MODE", "hsm"),
        ("AGENT_C8Y_URL", "https://example.com"),
        ("AGENT_DEVICE_KEY_URI", "token=x"),
    ],
)
def test_invalid_env_value_names_the_variable(tmp_path, variable, value):
    with pytest.raises(InvalidConfigValue, match=variable):
        load_config(tmp_path, {variable: value})


def test_invalid_env_pin_is_not_echoed(tmp_path):
    # A PIN is never in a message; force an error on another key in the same load.
    with pytest.raises(InvalidConfigValue) as caught:
        load_config(
            tmp_path, {"AGENT_DEVICE_CRYPTOKI_PIN": "s3cr3t", "AGENT_MQTT_CLIENT_PORT": "0"}
        )
    assert "s3cr3t" not in str(caught.value)


def test_relative_path_from_env_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(tmp_path, {"AGENT_DEVICE_CERT_PATH": "certs/device.pem"})
    assert cfg.device.cert_path == tmp_path / "certs" / "device.pem"


def test_list_reports_env_as_the_source(tmp_path):
    entries = list_values(tmp_path, environ={"AGENT_MQTT_CLIENT_HOST": "10.0.0.1"})
    assert [(e.key, e.value, e.source) for e in entries] == [
        ("mqtt.client.host", "10.0.0.1", "env")
    ]


def test_set_is_not_affected_by_env(tmp_path, monkeypatch):
    # The file is validated on its own: a bad variable does not block editing it.
    monkeypatch.setenv("AGENT_MQTT_CLIENT_PORT", "nope")
    set_value(tmp_path, "mqtt.client.host", "h")
    assert "host" in (tmp_path / "agent.toml").read_text()

"""The schema: keys, defaults, validation rules, per-cloud overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from edgeagent.config import AgentConfig, DeviceIdentity, all_keys, env_var_name, parse_host_port
from edgeagent.errors import MissingConfigValue, UnknownCloud

EXPECTED_KEYS = {
    "device.cryptoki.mode",
    "device.cryptoki.module_path",
    "device.cryptoki.pin",
    "device.cryptoki.uri",
    "device.cryptoki.socket_path",
    "device.key_uri",
    "device.key_path",
    "device.cert_path",
    "device.key_pin",
    "device.key_policy",
    "c8y.url",
    "c8y.root_cert_path",
    "c8y.device.key_uri",
    "c8y.device.cert_path",
    "c8y.device.key_path",
    "c8y.device.key_pin",
    "c8y.tls.min_version",
    "c8y.http",
    "az.url",
    "az.root_cert_path",
    "az.device.key_uri",
    "az.device.cert_path",
    "az.device.key_path",
    "az.device.key_pin",
    "az.tls.min_version",
    "aws.url",
    "aws.root_cert_path",
    "aws.device.key_uri",
    "aws.device.cert_path",
    "aws.device.key_path",
    "aws.device.key_pin",
    "aws.tls.min_version",
    "mqtt.client.host",
    "mqtt.client.port",
    "mqtt.bridge.built_in",
    "run.path",
    "logs.path",
    "p11_server.socket_group",
    "p11_server.allowed_users",
    "p11_server.allowed_groups",
}


def test_the_schema_has_exactly_the_documented_keys():
    assert {spec.name for spec in all_keys()} == EXPECTED_KEYS


def test_every_key_has_a_doc_an_example_and_a_format():
    for spec in all_keys():
        assert spec.doc.strip(), spec.name
        assert spec.example.strip(), spec.name
        assert spec.format.strip(), spec.name


def test_every_example_is_a_valid_value():
    from edgeagent.config.validation import parse_value

    for spec in all_keys():
        parse_value(spec, spec.example)


def test_env_var_names_are_unique_and_do_not_clash_with_agent_config_dir():
    names = [spec.env_var for spec in all_keys()]
    assert len(names) == len(set(names))
    assert "AGENT_CONFIG_DIR" not in names


def test_env_var_naming_rule():
    assert env_var_name("device.cryptoki.pin") == "AGENT_DEVICE_CRYPTOKI_PIN"
    assert env_var_name("c8y.device.key_uri") == "AGENT_C8Y_DEVICE_KEY_URI"
    assert env_var_name("mqtt.bridge.built_in") == "AGENT_MQTT_BRIDGE_BUILT_IN"


def test_defaults():
    cfg = AgentConfig()
    assert cfg.device.cryptoki.mode == "off"
    assert cfg.device.cryptoki.pin is None
    assert cfg.device.cryptoki.socket_path == Path("/run/agent-p11-server/agent-p11-server.sock")
    assert cfg.device.cert_path == Path("/etc/agent/device-certs/device.pem")
    assert cfg.c8y.url is None
    assert cfg.c8y.root_cert_path == Path("/etc/ssl/certs")
    assert cfg.mqtt.client.host == "127.0.0.1"
    assert cfg.mqtt.client.port == 1883
    assert cfg.mqtt.bridge.built_in is True
    assert cfg.run.path == Path("/run/agent")
    assert cfg.logs.path == Path("/var/log/agent")


def test_mode_error_names_the_allowed_values():
    with pytest.raises(ValidationError) as caught:
        AgentConfig.model_validate({"device": {"cryptoki": {"mode": "hsm"}}})
    assert "'off', 'module' or 'socket'" in str(caught.value)


@pytest.mark.parametrize("uri", ["token=x", "PKCS11:token=x", "file:///key.pem", " pkcs11:x"])
def test_key_uris_must_start_with_pkcs11(uri):
    with pytest.raises(ValidationError):
        AgentConfig.model_validate({"device": {"key_uri": uri}})
    with pytest.raises(ValidationError):
        AgentConfig.model_validate({"c8y": {"device": {"key_uri": uri}}})


def test_paths_in_the_file_must_be_absolute():
    with pytest.raises(ValidationError):
        AgentConfig.model_validate({"device": {"cert_path": "certs/device.pem"}})


def test_a_numeric_pin_written_by_hand_is_text():
    cfg = AgentConfig.model_validate({"device": {"cryptoki": {"pin": 123456}}})
    assert isinstance(cfg.device.cryptoki.pin, SecretStr)
    assert cfg.device.cryptoki.pin.get_secret_value() == "123456"
    assert "123456" not in repr(cfg)


def test_unknown_keys_are_refused():
    with pytest.raises(ValidationError):
        AgentConfig.model_validate({"device": {"cryptoki": {"modul_path": "/x.so"}}})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("example.cumulocity.com", ("example.cumulocity.com", None)),
        ("example.cumulocity.com:1883", ("example.cumulocity.com", 1883)),
        ("127.0.0.1:65535", ("127.0.0.1", 65535)),
        ("[::1]:8883", ("::1", 8883)),
        ("[::1]", ("::1", None)),
    ],
)
def test_host_port_parsing(url, expected):
    assert parse_host_port(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "mqtts://example.com:8883",
        "example.com:0",
        "example.com:65536",
        "example.com:",
        "example.com:x",
        ":8883",
        "",
        "example.com/path",
        "a b",
        "::1",
        "[::1",
    ],
)
def test_bad_urls_are_refused(url):
    with pytest.raises(ValueError):
        parse_host_port(url)
    with pytest.raises(ValidationError):
        AgentConfig.model_validate({"c8y": {"url": url}})


def test_c8y_host_port_defaults_to_8883():
    cfg = AgentConfig.model_validate({"c8y": {"url": "example.cumulocity.com"}})
    assert cfg.c8y.host_port() == ("example.cumulocity.com", 8883)
    cfg = AgentConfig.model_validate({"c8y": {"url": "localhost:18883"}})
    assert cfg.c8y.host_port() == ("localhost", 18883)


def test_host_port_without_url_is_a_missing_value():
    with pytest.raises(MissingConfigValue, match=r"c8y\.url"):
        AgentConfig().c8y.host_port()


def test_per_cloud_identity_overrides_device_wide_key_by_key():
    cfg = AgentConfig.model_validate(
        {
            "device": {
                "key_uri": "pkcs11:token=t;object=device",
                "key_path": "/etc/agent/device.key",
                "cert_path": "/etc/agent/device.pem",
            },
            "c8y": {"device": {"key_uri": "pkcs11:token=t;object=c8y"}},
        }
    )
    assert cfg.identity("c8y") == DeviceIdentity(
        cloud="c8y",
        key_uri="pkcs11:token=t;object=c8y",
        key_uri_key="c8y.device.key_uri",
        key_path=Path("/etc/agent/device.key"),
        cert_path=Path("/etc/agent/device.pem"),
    )


def test_identity_falls_back_to_device_wide_values():
    cfg = AgentConfig.model_validate({"device": {"key_uri": "pkcs11:token=t"}})
    identity = cfg.identity("c8y")
    assert identity.key_uri == "pkcs11:token=t"
    assert identity.cert_path == Path("/etc/agent/device-certs/device.pem")


def test_identity_of_an_unknown_cloud():
    with pytest.raises(UnknownCloud):
        AgentConfig().identity("gcp")


def test_clouds_share_one_section_model():
    from edgeagent.config import CloudConfig

    assert AgentConfig.cloud_names() == ("c8y", "az", "aws")
    assert isinstance(AgentConfig().cloud("c8y"), CloudConfig)
    for name in AgentConfig.cloud_names():
        assert AgentConfig().cloud(name).cloud == name


def test_loaded_config_is_immutable():
    cfg = AgentConfig()
    with pytest.raises(ValidationError):
        cfg.mqtt.client.port = 1  # type: ignore[misc]

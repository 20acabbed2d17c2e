"""get / set_value / unset / list_values, without a subprocess."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgeagent.config import all_keys, get, list_values, load_config, set_value, unset
from edgeagent.errors import (
    ConfigError,
    InvalidConfigValue,
    MissingConfigValue,
    UnknownConfigKey,
)

EXISTING = """\
# hand-written
[device]
key_uri = "pkcs11:token=t;object=k"

[c8y]
url = "example.cumulocity.com"
"""


pytestmark = pytest.mark.usefixtures("no_agent_environment")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "agent.toml").write_text(EXISTING)
    return tmp_path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("key", "value", "error", "named"),
    [
        ("device.cryptoki.mode", "hsm", InvalidConfigValue, "off, module, socket"),
        ("device.cryptoki.mode", "", InvalidConfigValue, "unset"),
        ("mqtt.client.port", "70000", InvalidConfigValue, "1-65535"),
        ("mqtt.client.port", "0", InvalidConfigValue, "1-65535"),
        ("mqtt.client.port", "18x", InvalidConfigValue, "1-65535"),
        ("c8y.url", "https://example.cumulocity.com", InvalidConfigValue, "without a scheme"),
        ("c8y.url", "example.cumulocity.com:99999", InvalidConfigValue, "1-65535"),
        ("device.key_uri", "token=t;object=k", InvalidConfigValue, "pkcs11:"),
        ("c8y.device.key_uri", "/etc/agent/key.pem", InvalidConfigValue, "pkcs11:"),
        ("device.cryptoki.uri", "tok", InvalidConfigValue, "pkcs11:"),
        ("mqtt.bridge.built_in", "maybe", InvalidConfigValue, "true or false"),
        ("device.cryptoki.mdoe", "module", UnknownConfigKey, "device.cryptoki.mode"),
        ("nosuch.key", "1", UnknownConfigKey, "agent config list --doc"),
        ("device.cryptoki", "module", UnknownConfigKey, "agent config list --doc"),
    ],
)
def test_set_refuses_and_leaves_the_file_byte_for_byte(config_dir, key, value, error, named):
    before = digest(config_dir / "agent.toml")
    with pytest.raises(error) as caught:
        set_value(config_dir, key, value)
    message = str(caught.value)
    assert named in message
    if error is InvalidConfigValue:
        assert key in message
    assert digest(config_dir / "agent.toml") == before
    assert sorted(p.name for p in config_dir.iterdir()) == ["agent.toml"]


def test_set_refuses_without_creating_a_file(tmp_path):
    with pytest.raises(InvalidConfigValue):
        set_value(tmp_path, "mqtt.client.port", "0")
    assert list(tmp_path.iterdir()) == []


def test_set_validates_the_whole_resulting_file(config_dir):
    path = config_dir / "agent.toml"
    path.write_text(EXISTING + "\n[mqtt.client]\nport = 0\n")
    before = digest(path)
    with pytest.raises(InvalidConfigValue, match=r"mqtt\.client\.port in .*agent\.toml"):
        set_value(config_dir, "device.cryptoki.mode", "module")
    assert digest(path) == before
    set_value(config_dir, "mqtt.client.port", "1883")  # fixing the bad key is allowed
    assert load_config(config_dir).mqtt.client.port == 1883


def test_value_where_a_section_belongs(config_dir):
    path = config_dir / "agent.toml"
    path.write_text('mqtt = "broker"\n')
    before = digest(path)
    with pytest.raises(ConfigError, match="mqtt"):
        set_value(config_dir, "mqtt.client.port", "1884")
    assert digest(path) == before


def test_set_stores_typed_values(tmp_path):
    set_value(tmp_path, "mqtt.client.port", "1884")
    set_value(tmp_path, "mqtt.bridge.built_in", "no")
    text = (tmp_path / "agent.toml").read_text()
    assert "port = 1884\n" in text
    assert "built_in = false\n" in text


def test_set_returns_what_it_stored(tmp_path):
    assert set_value(tmp_path, "mqtt.bridge.built_in", "yes") == "true"
    assert set_value(tmp_path, "device.cryptoki.pin", "1234") == "<hidden>"


def test_relative_path_is_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stored = set_value(tmp_path, "device.cryptoki.module_path", "lib/libsofthsm2.so")
    assert stored == str(tmp_path / "lib" / "libsofthsm2.so")
    assert load_config(tmp_path).device.cryptoki.module_path == tmp_path / "lib/libsofthsm2.so"


def test_values_the_user_story_sets(tmp_path):
    set_value(tmp_path, "device.cryptoki.mode", "module")
    set_value(tmp_path, "device.cryptoki.module_path", "/usr/lib/softhsm/libsofthsm2.so")
    set_value(tmp_path, "device.cryptoki.pin", "123456")
    set_value(tmp_path, "device.key_uri", "pkcs11:token=my-token;object=my-key")
    set_value(tmp_path, "device.cert_path", "/etc/agent/device-certs/device.pem")
    set_value(tmp_path, "c8y.url", "example.cumulocity.com")
    set_value(tmp_path, "c8y.root_cert_path", "/etc/ssl/certs")
    cfg = load_config(tmp_path)
    assert cfg.device.cryptoki.mode == "module"
    assert cfg.device.cryptoki.pin is not None
    assert cfg.device.cryptoki.pin.get_secret_value() == "123456"
    assert cfg.identity("c8y").key_uri == "pkcs11:token=my-token;object=my-key"
    assert cfg.c8y.host_port() == ("example.cumulocity.com", 8883)


def test_get_effective_values(config_dir):
    assert get(config_dir, "c8y.url") == "example.cumulocity.com"
    assert get(config_dir, "mqtt.client.port") == "1883"  # default
    assert get(config_dir, "mqtt.bridge.built_in") == "true"
    assert get(config_dir, "c8y.url", environ={"AGENT_C8Y_URL": "other.example:1"}) == (
        "other.example:1"
    )


def test_get_unset_key_is_missing(config_dir):
    with pytest.raises(MissingConfigValue, match=r"device\.key_path is not set"):
        get(config_dir, "device.key_path")


def test_get_unknown_key(config_dir):
    with pytest.raises(UnknownConfigKey, match=r"did you mean c8y\.url"):
        get(config_dir, "c8y.ulr")


def test_get_pin_hidden_unless_revealed(config_dir):
    set_value(config_dir, "device.cryptoki.pin", "s3cr3t")
    assert get(config_dir, "device.cryptoki.pin") == "<hidden>"
    assert get(config_dir, "device.cryptoki.pin", reveal=True) == "s3cr3t"


def test_unset(config_dir):
    assert unset(config_dir, "c8y.url") is True
    with pytest.raises(MissingConfigValue):
        get(config_dir, "c8y.url")


def test_unset_absent_key_does_not_write(config_dir):
    path = config_dir / "agent.toml"
    before = (digest(path), path.stat().st_mtime_ns)
    assert unset(config_dir, "mqtt.client.port") is False
    assert (digest(path), path.stat().st_mtime_ns) == before
    assert unset(config_dir / "nope", "mqtt.client.port") is False
    assert not (config_dir / "nope").exists()


def test_unset_unknown_key(config_dir):
    with pytest.raises(UnknownConfigKey):
        unset(config_dir, "c8y.urll")


def test_unset_pin_then_file_keeps_private_mode(config_dir):
    set_value(config_dir, "device.cryptoki.pin", "1234")
    unset(config_dir, "device.cryptoki.pin")
    assert "1234" not in (config_dir / "agent.toml").read_text()
    assert (config_dir / "agent.toml").stat().st_mode & 0o077 == 0


def test_list_shows_set_keys_only(config_dir):
    entries = list_values(config_dir)
    assert [(e.key, e.value, e.source) for e in entries] == [
        ("device.key_uri", "pkcs11:token=t;object=k", "file"),
        ("c8y.url", "example.cumulocity.com", "file"),
    ]


def test_list_all_includes_defaults(config_dir):
    entries = {e.key: e for e in list_values(config_dir, include_defaults=True)}
    assert entries["mqtt.client.port"].value == "1883"
    assert entries["mqtt.client.port"].source == "default"
    assert entries["device.key_path"].value == ""


def test_list_prefix(config_dir):
    keys = [e.key for e in list_values(config_dir, doc=True, prefix="device.cryptoki")]
    assert keys == [
        "device.cryptoki.mode",
        "device.cryptoki.module_path",
        "device.cryptoki.pin",
        "device.cryptoki.uri",
        "device.cryptoki.socket_path",
    ]
    assert [e.key for e in list_values(config_dir, prefix="c8y.url")] == ["c8y.url"]


def test_list_unknown_prefix(config_dir):
    with pytest.raises(UnknownConfigKey, match=r"did you mean device\.cryptoki"):
        list_values(config_dir, prefix="device.cryptok")


def test_list_doc_covers_every_key_with_doc_example_and_env(config_dir):
    entries = list_values(config_dir, doc=True)
    assert len(entries) == len(all_keys())
    pin = next(e for e in entries if e.key == "device.cryptoki.pin")
    assert pin.env_var == "AGENT_DEVICE_CRYPTOKI_PIN"
    assert pin.doc and pin.example


def test_list_doc_does_not_read_the_file(config_dir):
    (config_dir / "agent.toml").write_text("[device\n")
    entries = list_values(config_dir, doc=True, prefix="device.key_uri")
    assert [(e.key, e.value) for e in entries] == [("device.key_uri", None)]


def test_pin_never_in_list(config_dir):
    set_value(config_dir, "device.cryptoki.pin", "s3cr3t-pin")
    env = {"AGENT_DEVICE_CRYPTOKI_PIN": "env-pin"}
    for doc in (False, True):
        for environ in ({}, env):
            entries = list_values(config_dir, doc=doc, include_defaults=True, environ=environ)
            assert "s3cr3t-pin" not in repr(entries)
            assert "env-pin" not in repr(entries)
            pin = next(e for e in entries if e.key == "device.cryptoki.pin")
            assert pin.value == (None if doc else "<hidden>")


def test_pin_never_in_error_messages(config_dir):
    (config_dir / "agent.toml").write_text('[device.cryptoki]\npin = ["s3cr3t"]\n')
    with pytest.raises(InvalidConfigValue) as caught:
        load_config(config_dir)
    assert "s3cr3t" not in str(caught.value)
    assert "device.cryptoki.pin" in str(caught.value)

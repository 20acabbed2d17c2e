"""No pydantic wording reaches the user (issue 12 part 8).

Every way a value can be refused (`config set`, agent.toml, an AGENT_*
variable; a bad number, range, boolean, choice, path, URL, a value where a
table belongs and the other way round) reads in our words: "must be a port
number, 1-65535", never "Input should be a valid integer, unable to parse
string as an integer".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent.config import all_keys, load_config, set_value
from edgeagent.errors import ConfigError

pytestmark = pytest.mark.usefixtures("no_agent_environment")

LIBRARY_WORDS = (
    "Input should",
    "input_value",
    "valid integer",
    "valid boolean",
    "valid string",
    "valid dictionary",
    "unable to parse",
    "unable to interpret",
    "greater than or equal",
    "less than or equal",
    "Value error",
    "validation error",
    "pydantic",
    "errors.pydantic.dev",
)


def assert_in_our_words(error: ConfigError) -> None:
    text = str(error)
    for words in LIBRARY_WORDS:
        assert words not in text, f"{words!r} in: {text}"


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("mqtt.client.port", "abc", "must be a port number, 1-65535 (got 'abc')"),
        ("mqtt.client.port", "1.5", "must be a port number, 1-65535"),
        ("mqtt.client.port", "0", "must be a port number, 1-65535"),
        ("mqtt.client.port", "70000", "must be a port number, 1-65535"),
        ("mqtt.bridge.built_in", "maybe", "must be true or false"),
        ("device.cryptoki.mode", "hsm", "must be one of: off, module, socket"),
        ("device.key_policy", "strict", "must be one of: any, hardware"),
        ("c8y.tls.min_version", "1.1", "must be one of: 1.2, 1.3"),
        ("c8y.url", "host:99999", "the port must be a number, 1-65535"),
        ("c8y.url", "https://example.com", "without a scheme"),
        ("device.key_uri", "token=x", "must be a PKCS#11 URI"),
        ("mqtt.client.host", "h:1", "the port is a key of its own"),
        ("p11_server.allowed_users", "a;b", "is not a user/group name"),
    ],
)
def test_set_refuses_in_our_words(tmp_path: Path, key: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        set_value(tmp_path, key, value)
    assert words in caught.value.cause, caught.value.cause
    assert_in_our_words(caught.value)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("AGENT_MQTT_CLIENT_PORT", "abc"),
        ("AGENT_MQTT_BRIDGE_BUILT_IN", "maybe"),
        ("AGENT_DEVICE_CRYPTOKI_MODE", "hsm"),
    ],
)
def test_the_environment_is_refused_in_our_words(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {variable: value})
    assert f"{variable} (environment, " in caught.value.cause
    assert_in_our_words(caught.value)


@pytest.mark.parametrize("spec", all_keys(), ids=lambda spec: spec.name)
@pytest.mark.parametrize("wrong", ["{ a = 1 }", "[1, 2]", "2026-01-01"])
def test_every_key_of_the_wrong_toml_type_is_refused_in_our_words(
    tmp_path: Path, spec: object, wrong: str
) -> None:
    name = spec.name  # type: ignore[attr-defined]
    section, _, field = name.rpartition(".")
    (tmp_path / "agent.toml").write_text(f"[{section}]\n{field} = {wrong}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert f"{name} in {tmp_path / 'agent.toml'}: must be" in caught.value.cause
    assert_in_our_words(caught.value)


def test_a_value_where_a_table_belongs_is_said_so(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text("[mqtt]\nclient = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert "mqtt.client in" in caught.value.cause
    assert "must be a table of keys, not a value" in caught.value.cause
    assert_in_our_words(caught.value)

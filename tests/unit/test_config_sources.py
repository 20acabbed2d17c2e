"""The layering through pydantic-settings: what each source contributes, and who pays for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeagent.config import AgentConfig, C8yConfig, list_values, load_config
from edgeagent.config.sources import AgentEnvSource, AgentTomlSource, load_with_sources
from edgeagent.errors import InvalidConfigValue


def test_each_source_reports_the_keys_it_sets(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(
        '[c8y]\nurl = "file.example.com"\n[mqtt.client]\nport = 1884\n'
    )
    env = {"AGENT_C8Y_URL": "env.example.com", "AGENT_DEVICE_KEY_PIN": ""}
    config, sources = load_with_sources(tmp_path, env)
    assert config.c8y.url == "env.example.com"
    assert config.mqtt.client.port == 1884
    assert sources == {"c8y.url": "env", "mqtt.client.port": "file"}
    assert AgentTomlSource(AgentConfig, tmp_path / "agent.toml").keys == {
        "c8y.url",
        "mqtt.client.port",
    }
    assert AgentEnvSource(AgentConfig, env).keys == {"c8y.url"}  # empty is unset


def test_an_error_names_the_file_or_the_variable(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text("[mqtt.client]\nport = 0\n")
    with pytest.raises(InvalidConfigValue, match=r"mqtt\.client\.port in .*agent\.toml"):
        load_config(tmp_path, {})
    with pytest.raises(InvalidConfigValue, match=r"AGENT_MQTT_CLIENT_PORT \(environment, mqtt"):
        load_config(tmp_path, {"AGENT_MQTT_CLIENT_PORT": "70000"})


def test_a_variable_does_not_hide_a_broken_table_in_the_file(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text('device = "oops"\n')
    with pytest.raises(InvalidConfigValue, match=r"device in .*agent\.toml"):
        load_config(tmp_path, {"AGENT_DEVICE_KEY_URI": "pkcs11:token=t"})


def test_built_directly_the_configuration_reads_no_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("C8Y__URL=dotenv.example.com\n")
    for name in ("AGENT_C8Y_URL", "C8Y", "c8y", "C8Y__URL"):
        monkeypatch.setenv(name, '{"url": "env.example.com"}')
    assert AgentConfig().c8y.url is None
    assert AgentConfig(c8y=C8yConfig(url="given.example.com")).c8y.url == "given.example.com"


def test_list_shows_the_file_and_the_environment_as_sources(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text('[device.cryptoki]\nmode = "module"\n')
    entries = list_values(tmp_path, environ={"AGENT_MQTT_CLIENT_HOST": "10.0.0.1"})
    assert [(e.key, e.source) for e in entries] == [
        ("device.cryptoki.mode", "file"),
        ("mqtt.client.host", "env"),
    ]


@pytest.mark.parametrize(
    "module", ["edgeagent.cli.bridge_runtime", "edgeagent.cli.p11_server_runtime"]
)
def test_the_lean_runtimes_load_no_schema_library(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'pydantic_settings', 'pydantic_core', 'tomlkit')))"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

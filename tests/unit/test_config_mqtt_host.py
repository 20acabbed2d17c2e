"""mqtt.client.host is checked like the cloud URLs: a host, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent.config import load_config, set_value
from edgeagent.errors import ConfigError


@pytest.mark.parametrize(
    "bad",
    ["mqtt://127.0.0.1", "127.0.0.1:1883", "broker lan", "broker/path", "", "[::1]:1883"],
)
def test_a_value_that_is_not_a_host_is_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        set_value(tmp_path, "mqtt.client.host", bad)
    assert "mqtt.client.host" in str(caught.value)
    assert (
        not (tmp_path / "agent.toml").exists() or bad not in (tmp_path / "agent.toml").read_text()
    )


@pytest.mark.parametrize("good", ["127.0.0.1", "localhost", "broker.lan", "::1"])
def test_a_host_name_or_address_is_accepted(good: str, tmp_path: Path) -> None:
    set_value(tmp_path, "mqtt.client.host", good)
    assert load_config(tmp_path).mqtt.client.host == good


def test_the_environment_is_checked_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_MQTT_CLIENT_HOST", "mqtts://127.0.0.1")
    with pytest.raises(ConfigError, match=r"AGENT_MQTT_CLIENT_HOST|mqtt\.client\.host"):
        load_config(tmp_path)

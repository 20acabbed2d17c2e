"""The pydantic-free `config get` path answers exactly as the full path, or abstains."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeagent.config import all_keys, get, set_value
from edgeagent.config.keytable import KEYS
from edgeagent.config.keytable_gen import table
from edgeagent.config.quick import quick_get
from edgeagent.errors import AgentError

NO_ENV: dict[str, str] = {}


def test_the_table_is_the_schema() -> None:
    assert table() == KEYS, "run: python -m edgeagent.config.keytable_gen"


def full(
    config_dir: Path, key: str, reveal: bool = False, environ: dict[str, str] | None = None
) -> str | None:
    try:
        return get(
            config_dir, key, reveal=reveal, environ=environ if environ is not None else NO_ENV
        )
    except AgentError:
        return None


def agree(config_dir: Path, environ: dict[str, str] | None = None) -> int:
    """Every key: quick == full whenever quick answers; returns how many it answered."""
    answered = 0
    for spec in all_keys():
        for reveal in (False, True):
            quick = quick_get(
                config_dir, spec.name, reveal, environ if environ is not None else NO_ENV
            )
            if quick is not None:
                answered += 1
                assert quick == full(config_dir, spec.name, reveal, environ), spec.name
    return answered


def test_defaults_only(tmp_path: Path) -> None:
    assert agree(tmp_path) > 0  # no file: the defaults


def test_every_key_set_to_its_example(tmp_path: Path) -> None:
    for spec in all_keys():
        set_value(tmp_path, spec.name, spec.example)
    assert agree(tmp_path) == 2 * len(all_keys())  # all certain, so all quick


@pytest.mark.parametrize(
    "content",
    [
        "[mqtt.client]\nport = 70000\n",  # out of range: the full path reports it
        "[mqtt.client]\nport = '1883'\n",  # a string pydantic would coerce
        "[device]\ncert_path = '/etc//agent/x.pem'\n",  # a path pydantic would normalise
        "[device]\nkey_uri = 'file:/x'\n",
        "[device.cryptoki]\nmode = 'hsm'\n",
        "[nosuch]\nkey = 1\n",
        "[device]\ncryptoki = 3\n",
        "[device\n",  # not TOML
        "[c8y]\nurl = 'mqtts://x'\n",
        "[p11_server]\nallowed_users = 'a, b'\n",
        "[device.cryptoki]\npin = 123456\n",  # an integer PIN: shown as text
    ],
)
def test_doubtful_files_are_left_to_the_full_path(tmp_path: Path, content: str) -> None:
    (tmp_path / "agent.toml").write_text(content)
    agree(tmp_path)  # any answer it gives must match


def test_an_environment_override_is_left_to_the_full_path(tmp_path: Path) -> None:
    env = {"AGENT_MQTT_CLIENT_PORT": "1999"}
    assert quick_get(tmp_path, "mqtt.client.port", environ=env) is None
    assert quick_get(tmp_path, "mqtt.client.port", environ={"AGENT_MQTT_CLIENT_PORT": ""}) == "1883"


def test_agent_config_get_does_not_load_pydantic(tmp_path: Path) -> None:
    set_value(tmp_path, "device.cryptoki.mode", "module")
    code = (
        "import sys; from edgeagent.cli.main import main; "
        f"rc = main(['--config-dir', {str(tmp_path)!r}, 'config', 'get', 'device.cryptoki.mode']); "
        "print('pydantic' in sys.modules, rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.split() == ["module", "False", "0"]

"""Defaults that hold state follow the configuration directory (issue 12 part 7).

With a directory of one's own, the certificate, pid files and logs default to
DIR/device-certs/device.pem, DIR/run and DIR/logs, never into /etc/agent,
/run/agent or /var/log/agent; /etc/agent keeps the system paths.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent.cli.main import main
from edgeagent.config import AgentConfig, all_keys, list_values, load_config
from edgeagent.config.locations import STATE_DEFAULTS, is_system_config_dir, state_defaults
from edgeagent.config.quick import quick_get
from edgeagent.config.sources import load_with_sources

pytestmark = pytest.mark.usefixtures("no_agent_environment")

SYSTEM_PATHS = ("/etc/agent", "/run/agent", "/var/log/agent")


def test_a_directory_of_ones_own_keeps_its_state_inside(tmp_path: Path) -> None:
    config, sources = load_with_sources(tmp_path, {})
    assert config.device.cert_path == tmp_path / "device-certs" / "device.pem"
    assert config.run.path == tmp_path / "run"
    assert config.logs.path == tmp_path / "logs"
    assert config.identity("c8y").cert_path == tmp_path / "device-certs" / "device.pem"
    assert sources == {}  # still defaults: `config list` shows them only with --all


def test_no_default_of_a_directory_of_ones_own_points_into_the_systems(tmp_path: Path) -> None:
    config = load_config(tmp_path, {})
    for spec in all_keys():
        node: object = config
        for part in spec.path:
            node = getattr(node, part)
        if spec.name in STATE_DEFAULTS:
            assert not str(node).startswith(SYSTEM_PATHS), (spec.name, node)


def test_the_system_directory_keeps_the_system_paths() -> None:
    for spelling in ("/etc/agent", "/etc/agent/", "/etc/../etc/agent"):
        assert is_system_config_dir(Path(spelling)), spelling
        assert state_defaults(Path(spelling)) == {}
    config = AgentConfig()  # the schema's own defaults: what /etc/agent gets
    assert config.device.cert_path == Path("/etc/agent/device-certs/device.pem")
    assert (config.run.path, config.logs.path) == (Path("/run/agent"), Path("/var/log/agent"))


def test_a_symlink_to_etc_agent_is_etc_agent(tmp_path: Path) -> None:
    link = tmp_path / "agent"
    link.symlink_to("/etc/agent")
    assert is_system_config_dir(link) == Path("/etc/agent").exists()


def test_the_file_and_the_environment_still_win(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text('[run]\npath = "/srv/run"\n')
    config = load_config(tmp_path, {"AGENT_LOGS_PATH": "/srv/logs"})
    assert config.run.path == Path("/srv/run")
    assert config.logs.path == Path("/srv/logs")
    assert config.device.cert_path == tmp_path / "device-certs" / "device.pem"


def test_a_relative_directory_gives_absolute_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc"), {})
    assert config.run.path == tmp_path / "etc" / "run"


def test_quick_get_list_and_doc_say_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert quick_get(tmp_path, "logs.path", environ={}) == str(tmp_path / "logs")
    entries = {e.key: e for e in list_values(tmp_path, include_defaults=True, environ={})}
    assert entries["run.path"].value == str(tmp_path / "run")
    doc = {e.key: e for e in list_values(tmp_path, doc=True)}
    assert doc["device.cert_path"].default == str(tmp_path / "device-certs" / "device.pem")
    assert main(["--config-dir", str(tmp_path), "config", "get", "run.path"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'run'}\n"

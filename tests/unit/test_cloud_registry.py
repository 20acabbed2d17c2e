"""One list of clouds: the schema's cloud sections, read cheaply through the registry."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from edgeagent.clouds.profile import CloudProfile
from edgeagent.clouds.registry import CLOUDS, cloud_profile, cloud_title, require_cloud
from edgeagent.config import AgentConfig
from edgeagent.errors import ConfigError


def test_the_registry_lists_the_schemas_cloud_sections() -> None:
    assert AgentConfig.cloud_names() == CLOUDS, "run: python -m edgeagent.config.keytable_gen"
    assert CLOUDS  # c8y at least


def test_every_cloud_has_a_profile_module_and_a_rules_file() -> None:
    rules = resources.files("edgeagent.clouds") / "rules"
    shipped = {item.name.removesuffix(".toml") for item in rules.iterdir()}
    assert set(CLOUDS) == shipped
    for cloud in CLOUDS:
        module = importlib.import_module(f"edgeagent.clouds.{cloud}")
        assert callable(module.profile), f"edgeagent/clouds/{cloud}.py needs profile()"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_profile_is_named_after_its_cloud(cloud: str, tmp_path: Path) -> None:
    config = AgentConfig.model_validate({cloud: {"url": "cloud.example.com"}})
    profile = cloud_profile(cloud, config, tmp_path)
    assert isinstance(profile, CloudProfile)
    assert profile.name == cloud
    assert profile.identity == config.identity(cloud)
    assert profile.host == "cloud.example.com"
    assert profile.rules_path.name == f"{cloud}.toml"
    # `agent status` names a cloud that is not configured by the same title.
    assert cloud_title(cloud) == profile.title != cloud


def test_an_unknown_cloud_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown cloud 'gcp'") as caught:
        cloud_profile("gcp", AgentConfig(), tmp_path)
    assert ", ".join(CLOUDS) in caught.value.fix
    # A module of the clouds package that is not a cloud is not reachable as one.
    with pytest.raises(ConfigError):
        require_cloud("registry")


def test_the_list_of_clouds_loads_without_pydantic() -> None:
    # The CLI builds its parsers from CLOUDS on every run, `config get`'s
    # fast path included, which must not pay for pydantic.
    code = (
        "import sys; from edgeagent.clouds.registry import CLOUDS; "
        "loaded = [m for m in sys.modules if m.startswith(('pydantic', 'edgeagent.clouds.'))]; "
        "print(CLOUDS, sorted(loaded))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"{CLOUDS!r} ['edgeagent.clouds.registry']"

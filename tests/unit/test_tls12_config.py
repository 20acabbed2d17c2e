"""<cloud>.tls.min_version: every cloud section has it, "1.2" by default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edgeagent import errors
from edgeagent.config import AgentConfig, set_value


def test_every_cloud_has_min_version_defaulting_to_12() -> None:
    for name in AgentConfig.cloud_names():
        assert AgentConfig().cloud(name).tls.min_version == "1.2"


@pytest.mark.parametrize(("written", "read"), [("1.3", "1.3"), ("1.2", "1.2"), (1.3, "1.3")])
def test_min_version_accepts_12_and_13_even_as_a_toml_number(written: object, read: str) -> None:
    cfg = AgentConfig.model_validate({"c8y": {"tls": {"min_version": written}}})
    assert cfg.c8y.tls.min_version == read


@pytest.mark.parametrize("bad", ["1.1", "1.0", "tls1.3", "", 1.4])
def test_older_or_unknown_versions_are_refused(bad: object) -> None:
    with pytest.raises(ValidationError):
        AgentConfig.model_validate({"c8y": {"tls": {"min_version": bad}}})


def test_config_set_refuses_tls11_naming_the_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidConfigValue) as caught:
        set_value(tmp_path, "c8y.tls.min_version", "1.1")
    assert "1.2" in str(caught.value) and "1.3" in str(caught.value)
    set_value(tmp_path, "c8y.tls.min_version", "1.3")
    assert "min_version" in (tmp_path / "agent.toml").read_text()

"""The clouds the agent knows, by the name users type."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgeagent.clouds.c8y import c8y_profile
from edgeagent.clouds.profile import CloudProfile
from edgeagent.config import AgentConfig
from edgeagent.errors import UnknownCloud

_PROFILES: dict[str, Callable[[AgentConfig, Path], CloudProfile]] = {"c8y": c8y_profile}

CLOUDS = tuple(_PROFILES)


def cloud_profile(cloud: str, config: AgentConfig, config_dir: Path) -> CloudProfile:
    try:
        build = _PROFILES[cloud]
    except KeyError:
        raise UnknownCloud(
            f"unknown cloud {cloud!r}",
            f"use one of: {', '.join(CLOUDS)}",
        ) from None
    return build(config, config_dir)

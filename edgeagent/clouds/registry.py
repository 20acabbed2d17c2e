"""The clouds the agent knows, by the name users type: the one list above the config layer.

    from edgeagent.clouds.registry import CLOUDS, cloud_profile
    CLOUDS                                          # ("c8y",): argparse choices, loops
    profile = cloud_profile("c8y", config, config_dir)
    cloud_title("az")                               # "Azure IoT Hub", configured or not

A cloud is three things, each in one place:

- its configuration keys: a ``CloudConfig`` section in ``edgeagent/config/schema.py``
  (the configuration layer cannot import this one, and every key lives in the schema);
  ``CLOUDS`` is that list, read from the generated ``config/keytable.py``;
- its profile module ``edgeagent/clouds/<name>.py`` with its ``TITLE`` and a function
  ``profile(config, config_dir) -> CloudProfile`` (endpoint, client id, username,
  limits);
- its bridge rules ``edgeagent/clouds/rules/<name>.toml``.

No command lists cloud names itself; tests/unit/test_cloud_registry.py checks that
every cloud has all three. Importing this module is cheap (no pydantic, no profile
module): the CLI builds its parsers from ``CLOUDS`` on every invocation, `agent
config get`'s fast path included. A profile module is imported when its cloud is used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.config.keytable import CLOUDS
from edgeagent.errors import UnknownCloud

if TYPE_CHECKING:
    from edgeagent.clouds.profile import CloudProfile
    from edgeagent.config import AgentConfig

__all__ = ["CLOUDS", "cloud_profile", "cloud_title", "require_cloud"]


def require_cloud(cloud: str) -> str:
    """``cloud`` if the agent knows it; else the error listing the clouds it knows."""
    if cloud not in CLOUDS:
        raise UnknownCloud(f"unknown cloud {cloud!r}", f"use one of: {', '.join(CLOUDS)}")
    return cloud


def cloud_title(cloud: str) -> str:
    """The name people know ``cloud`` by ("Azure IoT Hub"), configured or not."""
    title: str = importlib.import_module(f"edgeagent.clouds.{require_cloud(cloud)}").TITLE
    return title


def cloud_profile(cloud: str, config: AgentConfig, config_dir: Path) -> CloudProfile:
    """What the agent needs to bridge to ``cloud``, resolved from ``config``."""
    module = importlib.import_module(f"edgeagent.clouds.{require_cloud(cloud)}")
    profile: CloudProfile = module.profile(config, config_dir)
    return profile

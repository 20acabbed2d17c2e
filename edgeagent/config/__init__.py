"""Configuration: the schema, agent.toml, AGENT_* overrides, get/set/unset/list.

from edgeagent.config import load_config
cfg = load_config(Path("/etc/agent"))
cfg.device.cryptoki.mode, cfg.identity("c8y"), cfg.c8y.host_port()
"""

from __future__ import annotations

from edgeagent.config.env import env_overrides
from edgeagent.config.file import CONFIG_FILE_NAME, config_file
from edgeagent.config.keys import KeySpec, all_keys, env_var_name, lookup
from edgeagent.config.load import load_config
from edgeagent.config.operations import (
    ConfigEntry,
    env_override,
    get,
    list_values,
    set_value,
    unset,
)
from edgeagent.config.schema import (
    AgentConfig,
    C8yConfig,
    CloudConfig,
    CloudDeviceConfig,
    CryptokiConfig,
    DeviceConfig,
    DeviceIdentity,
    parse_host_port,
)

__all__ = [
    "CONFIG_FILE_NAME",
    "AgentConfig",
    "C8yConfig",
    "CloudConfig",
    "CloudDeviceConfig",
    "ConfigEntry",
    "CryptokiConfig",
    "DeviceConfig",
    "DeviceIdentity",
    "KeySpec",
    "all_keys",
    "config_file",
    "env_override",
    "env_overrides",
    "env_var_name",
    "get",
    "list_values",
    "load_config",
    "lookup",
    "parse_host_port",
    "set_value",
    "unset",
]

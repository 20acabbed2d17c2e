"""Configuration: the schema, agent.toml, AGENT_* overrides, get/set/unset/list.

    from edgeagent.config import load_config
    cfg = load_config(Path("/etc/agent"))
    cfg.device.cryptoki.mode, cfg.identity("c8y"), cfg.c8y.host_port()

The names below are imported on first use (PEP 562), so that importing a
light submodule (``edgeagent.config.quick``, used by `agent config get`)
does not load pydantic and the schema.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeagent.config.cloud_sections import C8yConfig, CloudConfig, CloudDeviceConfig
    from edgeagent.config.file import CONFIG_FILE_NAME, config_file
    from edgeagent.config.keys import KeySpec, all_keys, env_var_name, lookup
    from edgeagent.config.operations import (
        ConfigEntry,
        env_override,
        get,
        list_values,
        set_value,
        unset,
    )
    from edgeagent.config.schema import AgentConfig, CryptokiConfig, DeviceConfig, DeviceIdentity
    from edgeagent.config.sources import load_config
    from edgeagent.config.values import parse_host_port

_WHERE = {
    "CONFIG_FILE_NAME": "file",
    "config_file": "file",
    "KeySpec": "keys",
    "all_keys": "keys",
    "env_var_name": "keys",
    "lookup": "keys",
    "load_config": "sources",
    "ConfigEntry": "operations",
    "env_override": "operations",
    "get": "operations",
    "list_values": "operations",
    "set_value": "operations",
    "unset": "operations",
    "AgentConfig": "schema",
    "C8yConfig": "cloud_sections",
    "CloudConfig": "cloud_sections",
    "CloudDeviceConfig": "cloud_sections",
    "CryptokiConfig": "schema",
    "DeviceConfig": "schema",
    "DeviceIdentity": "schema",
    "parse_host_port": "values",
}

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
    "env_var_name",
    "get",
    "list_values",
    "load_config",
    "lookup",
    "parse_host_port",
    "set_value",
    "unset",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeagent.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"edgeagent.config.{module}"), name)
    globals()[name] = value
    return value

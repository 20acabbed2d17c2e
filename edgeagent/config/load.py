"""Reading the effective configuration: defaults < agent.toml < AGENT_* variables."""

from __future__ import annotations

import logging
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from edgeagent.config.env import env_overrides
from edgeagent.config.file import config_file, read_document
from edgeagent.config.keys import all_keys, keys_by_name
from edgeagent.config.schema import AgentConfig
from edgeagent.config.validation import config_error

log = logging.getLogger(__name__)

Source = Literal["default", "file", "env"]


def nested_get(data: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    """(found, value) for a dotted path in nested mappings."""
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _nested_set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            # agent.toml has a value where a table belongs; validation
            # reports that against the file, which is what needs fixing.
            return
        node = child
    node[path[-1]] = value


def load_with_sources(
    config_dir: Path, environ: Mapping[str, str] | None = None
) -> tuple[AgentConfig, dict[str, Source]]:
    """The validated configuration and, for each key set anywhere, where from."""
    path = config_file(config_dir)
    document = read_document(path)
    data: dict[str, Any] = document.unwrap() if document is not None else {}
    sources: dict[str, Source] = {}
    for name in keys_by_name():
        found, value = nested_get(data, tuple(name.split(".")))
        if found and value is not None:
            sources[name] = "file"
    for spec, raw in env_overrides(environ).items():
        _nested_set(data, spec.path, raw)
        sources[spec.name] = "env"

    def where(name: str) -> str:
        spec = keys_by_name().get(name)
        if spec is not None and sources.get(name) == "env":
            return f"{spec.env_var} (environment, {name})"
        return f"{name} in {path}"

    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as error:
        raise config_error(error, "", where) from None
    if document is not None and config.device.cryptoki.pin is not None:
        _warn_if_readable(path, sources)
    return config, sources


def _warn_if_readable(path: Path, sources: Mapping[str, Source]) -> None:
    if not any(spec.secret and sources.get(spec.name) == "file" for spec in all_keys()):
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "%s holds a token PIN and is readable by others (mode %o); run: chmod 600 %s",
            path,
            mode,
            path,
        )


def load_config(config_dir: Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """agent.toml in ``config_dir`` with AGENT_* overrides, validated.

    A missing file means all defaults. Raises ConfigSyntaxError (with line and
    column), UnknownConfigKey or InvalidConfigValue naming the key and where
    its value came from.
    """
    return load_with_sources(config_dir, environ)[0]

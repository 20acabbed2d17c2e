"""The effective configuration: defaults < agent.toml < AGENT_* variables (pydantic-settings).

    config = load_config(Path("/etc/agent"))
    config, sources = load_with_sources(Path("/etc/agent"))   # sources["c8y.url"] == "env"

``AgentConfig`` is a pydantic-settings ``BaseSettings``; its fields' defaults
are the bottom layer, and the two sources below are merged over them by
pydantic-settings (``deep_update``, highest priority first), then validated
once. Each source remembers which keys it set, so ``agent config list`` shows
where a value came from and an invalid value is reported against the place to
fix it: ``AGENT_C8Y_URL (environment, c8y.url)`` or ``c8y.url in /etc/agent/agent.toml``.

Environment variables are ``AGENT_`` + the dotted key upper-cased, dots -> ``_``::

    device.cryptoki.pin  ->  AGENT_DEVICE_CRYPTOKI_PIN
    c8y.device.key_uri   ->  AGENT_C8Y_DEVICE_KEY_URI

the same rule as thin-edge's TEDGE_*, so users moving over can guess the
names. pydantic-settings' own ``EnvSettingsSource`` cannot read them: its
nested naming needs a delimiter (``AGENT_DEVICE__CRYPTOKI__PIN``) because a
single ``_`` both joins sections and appears inside key names. Our source goes
the other way, from each schema key to its one variable name, which is
unambiguous as long as the names are unique (a unit test checks that). An
empty variable is "unset" (thin-edge b61addc9c: an empty PIN variable must
not become an empty PIN), and a relative path is made absolute against the
current directory, as `agent config set` does.

Cost: pydantic-settings adds ~25 ms to a full load (import + load_config 90 ->
115 ms, `agent config list` 141 -> 165 ms, medians on 2 cores) and nothing to
the measured paths: `agent config get` answers without pydantic
(config/quick.py) and the lean runtimes never import this package.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from edgeagent.config.file import config_file, nested_get, read_document
from edgeagent.config.keys import absolute_if_path, all_keys, keys_by_name
from edgeagent.config.locations import state_defaults
from edgeagent.config.ownership import refuse_untrusted_settings
from edgeagent.config.schema import AgentConfig
from edgeagent.config.validation import config_error

log = logging.getLogger(__name__)

Source = Literal["default", "file", "env"]


class _WholeTreeSource(PydanticBaseSettingsSource):
    """A source that produces the whole nested mapping at once (``__call__``)."""

    data: dict[str, Any]
    keys: set[str]
    """The dotted keys this source sets."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Only used by sources that go field by field; ours do not.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.data


class AgentTomlSource(_WholeTreeSource):
    """agent.toml, read with tomlkit (syntax errors carry line and column); missing: empty."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        document = read_document(path)
        self.exists = document is not None
        self.data = document.unwrap() if document is not None else {}
        self.keys = set()
        for spec in all_keys():
            found, value = nested_get(self.data, spec.path)
            if found and value is not None:
                self.keys.add(spec.name)


class AgentEnvSource(_WholeTreeSource):
    """AGENT_* variables (see the module docstring for the naming)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        environ: Mapping[str, str] | None = None,
        over: Mapping[str, Any] | None = None,
    ) -> None:
        """``over``: the layer below, whose values an override must not turn into tables."""
        super().__init__(settings_cls)
        env = os.environ if environ is None else environ
        self.data = {}
        self.keys = set()
        for spec in all_keys():
            raw = env.get(spec.env_var)
            if not raw:
                continue
            self.keys.add(spec.name)
            _nested_set(self.data, spec.path, absolute_if_path(spec, raw), over or {})


class StateDefaultsSource(_WholeTreeSource):
    """The defaults that follow the configuration directory (config/locations.py).

    Below agent.toml and the environment; its keys still count as defaults.
    """

    def __init__(self, settings_cls: type[BaseSettings], config_dir: Path) -> None:
        super().__init__(settings_cls)
        self.data = {}
        self.keys = set()
        for name, path in state_defaults(config_dir).items():
            _nested_set(self.data, tuple(name.split(".")), path, {})


def _nested_set(
    data: dict[str, Any], path: tuple[str, ...], value: Any, below: Mapping[str, Any]
) -> None:
    node = data
    for depth, part in enumerate(path[:-1]):
        found, under = nested_get(below, path[: depth + 1])
        if found and not isinstance(under, Mapping):
            # agent.toml has a value where a table belongs; validation reports
            # that against the file, which is what needs fixing.
            return
        node = node.setdefault(part, {})
    node[path[-1]] = value


def load_with_sources(
    config_dir: Path, environ: Mapping[str, str] | None = None
) -> tuple[AgentConfig, dict[str, Source]]:
    """The validated configuration and, for each key set anywhere, where from."""
    path = config_file(config_dir)
    toml = AgentTomlSource(AgentConfig, path)
    env = AgentEnvSource(AgentConfig, environ, over=toml.data)
    sources: dict[str, Source] = dict.fromkeys(toml.keys, "file")
    sources.update(dict.fromkeys(env.keys, "env"))

    def where(name: str) -> str:
        spec = keys_by_name().get(name)
        if spec is not None and sources.get(name) == "env":
            return f"{spec.env_var} (environment, {name})"
        return f"{name} in {path}"

    try:
        # _build_sources is BaseSettings' own argument; the dataclass-style
        # signature mypy sees for a model lists only the fields.
        defaults = StateDefaultsSource(AgentConfig, config_dir)
        config = AgentConfig(_build_sources=((env, toml, defaults), {}))  # type: ignore[call-arg]
    except ValidationError as error:
        raise config_error(error, "", where) from None
    config._from_environment = frozenset(env.keys)
    if toml.exists and config.device.cryptoki.pin is not None:
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
    config, sources = load_with_sources(config_dir, environ)
    # As root: no module or PIN file from a file another user can change.
    # (Only here: `config get/list/set` still show and fix such a file.)
    from_file = [(key, _value_at(config, key)) for key, where in sources.items() if where == "file"]
    refuse_untrusted_settings(config_file(config_dir), from_file)
    return config


def _value_at(config: AgentConfig, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node

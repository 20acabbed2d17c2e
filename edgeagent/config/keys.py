"""The flat list of dotted keys, derived from the schema models.

``device.cryptoki.pin`` is the name a user types; :class:`KeySpec` ties it to
the field in :mod:`edgeagent.config.schema` that defines its type, default,
doc and example, and to its environment variable. Nothing here restates a
key: add a field to a schema model and it appears here, in ``list --doc``
and in the environment.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, SecretStr

from edgeagent.config.fields import Format
from edgeagent.config.schema import AgentConfig
from edgeagent.errors import UnknownConfigKey

ENV_PREFIX = "AGENT_"

TomlValue = str | int | bool


def env_var_name(key: str) -> str:
    """``device.cryptoki.pin`` -> ``AGENT_DEVICE_CRYPTOKI_PIN`` (thin-edge's TEDGE_* rule)."""
    return ENV_PREFIX + key.upper().replace(".", "_")


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: where it lives in the schema and how to show it."""

    name: str
    section: type[BaseModel]
    field: str
    doc: str
    example: str
    default: Any
    value_type: type
    format: str
    optional: bool

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))

    @property
    def env_var(self) -> str:
        return env_var_name(self.name)

    @property
    def secret(self) -> bool:
        return self.value_type is SecretStr

    def allowed(self) -> str:
        """What the value may be, for messages: format plus the example."""
        return f"{self.format}, e.g. {self.example}"


# -- walking the schema ------------------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """Strip ``X | None`` and ``Annotated``: (bare type, metadata, optional)."""
    metadata: list[Any] = []
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata.extend(extra)
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(members) < len(typing.get_args(annotation))
            if len(members) != 1:
                raise TypeError(f"config keys must have one type, not {annotation!r}")
            annotation = members[0]
        else:
            return annotation, metadata, optional


def _describe(bare: Any, metadata: list[Any]) -> tuple[type, str]:
    for item in metadata:
        if isinstance(item, Format):
            text = item.text
            break
    else:
        text = ""
    if typing.get_origin(bare) is Literal:
        choices = typing.get_args(bare)
        return str, text or "one of: " + ", ".join(str(c) for c in choices)
    assert isinstance(bare, type), bare
    defaults = {bool: "true or false", int: "an integer", str: "text", SecretStr: "text"}
    return bare, text or defaults.get(bare, bare.__name__)


def _walk(model: type[BaseModel], prefix: str) -> list[KeySpec]:
    specs: list[KeySpec] = []
    for field_name, info in model.model_fields.items():
        name = f"{prefix}{field_name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            specs.extend(_walk(annotation, name + "."))
            continue
        bare, metadata, optional = _unwrap(annotation)
        value_type, text = _describe(bare, [*info.metadata, *metadata])
        if info.description is None or not info.examples:
            raise TypeError(f"config key {name} needs a doc and an example (use schema.key)")
        specs.append(
            KeySpec(
                name=name,
                section=model,
                field=field_name,
                doc=info.description,
                example=str(info.examples[0]),
                default=info.get_default(call_default_factory=True),
                value_type=value_type,
                format=text,
                optional=optional,
            )
        )
    return specs


@cache
def all_keys() -> tuple[KeySpec, ...]:
    """Every key in schema order."""
    return tuple(_walk(AgentConfig, ""))


@cache
def keys_by_name() -> dict[str, KeySpec]:
    return {spec.name: spec for spec in all_keys()}


def _sections() -> set[str]:
    return {".".join(spec.path[:i]) for spec in all_keys() for i in range(1, len(spec.path))}


def unknown_key(name: str, what: str = "configuration key") -> UnknownConfigKey:
    """The error for a name that is not a key, with close matches as the fix."""
    candidates = [*keys_by_name(), *_sections()]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return UnknownConfigKey(
        f"unknown {what} {name!r}",
        f"{hint}`agent config list --doc` lists every key",
    )


def lookup(name: str) -> KeySpec:
    """The key called ``name``; UnknownConfigKey with suggestions otherwise."""
    spec = keys_by_name().get(name)
    if spec is None:
        raise unknown_key(name)
    return spec


def keys_under(prefix: str) -> list[KeySpec]:
    """Keys equal to ``prefix`` or below it (``device.cryptoki`` -> its five keys)."""
    if not prefix:
        return list(all_keys())
    found = [s for s in all_keys() if s.name == prefix or s.name.startswith(prefix + ".")]
    if not found:
        raise unknown_key(prefix, "configuration key or section")
    return found


# -- values ------------------------------------------------------------------------


def absolute_if_path(spec: KeySpec, raw: str) -> str:
    """A relative path typed in a shell means relative to that shell's cwd.

    Stored absolute, because the agent runs with another cwd (/ under systemd).
    abspath, not resolve(): a symlink the user named is kept as named.
    """
    if spec.value_type is Path and raw and not os.path.isabs(raw):
        return os.path.abspath(raw)
    return raw


def to_toml(spec: KeySpec, value: Any) -> TomlValue:
    """The value as agent.toml stores it: numbers and booleans native, the rest text."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool | int):
        return value
    return str(value)


def display(spec: KeySpec, value: Any, reveal: bool = False) -> str:
    """The value as `get`/`list` print it; a secret is ``<hidden>`` unless revealed."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value() if reveal else "<hidden>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

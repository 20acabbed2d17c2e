"""`agent config get|set|unset|list`, as functions the CLI only prints.

``set_value`` and ``unset`` check the new value alone and then the whole
resulting file against the schema before anything is written; on any error
agent.toml is left byte-for-byte as it was.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError
from tomlkit.items import Comment, Table
from tomlkit.toml_document import TOMLDocument

from edgeagent.config.file import (
    config_file,
    file_mode,
    nested_get,
    read_document,
    write_document,
)
from edgeagent.config.keys import (
    KeySpec,
    absolute_if_path,
    all_keys,
    display,
    keys_under,
    lookup,
    to_toml,
)
from edgeagent.config.locations import state_defaults
from edgeagent.config.schema import AgentConfig
from edgeagent.config.sources import Source, load_with_sources
from edgeagent.config.validation import config_error, parse_value
from edgeagent.errors import InvalidConfigValue, MissingConfigValue


@dataclass(frozen=True)
class ConfigEntry:
    """One key as `agent config list` shows it."""

    key: str
    value: str | None  # "" when unset; "<hidden>" for a secret; None with doc=True
    source: Source
    doc: str
    example: str
    format: str
    default: str
    env_var: str


def _value_of(config: AgentConfig, spec: KeySpec) -> Any:
    node: Any = config
    for part in spec.path:
        node = getattr(node, part)
    return node


def get(
    config_dir: Path, key: str, reveal: bool = False, environ: Mapping[str, str] | None = None
) -> str:
    """The effective value of ``key`` (environment, else file, else default).

    A secret prints as ``<hidden>`` unless ``reveal``. A key with no value
    raises MissingConfigValue.
    """
    spec = lookup(key)
    config, _ = load_with_sources(config_dir, environ)
    value = _value_of(config, spec)
    if value is None:
        raise MissingConfigValue(f"{key} is not set", f"agent config set {key} <{spec.format}>")
    return display(spec, value, reveal)


def list_values(
    config_dir: Path,
    doc: bool = False,
    prefix: str = "",
    include_defaults: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[ConfigEntry]:
    """Keys under ``prefix`` with their values; secrets are always ``<hidden>``.

    Only keys set in the file or environment, unless ``include_defaults``.
    With ``doc``, every key's documentation and no values: agent.toml is not
    read, so the documentation is there even while the file is broken.
    """
    specs = keys_under(prefix)
    config, sources = (None, {}) if doc else load_with_sources(config_dir, environ)
    own_defaults = state_defaults(config_dir)
    entries = []
    for spec in specs:
        source = sources.get(spec.name, "default")
        if source == "default" and not (doc or include_defaults):
            continue
        entries.append(
            ConfigEntry(
                key=spec.name,
                value=None if config is None else display(spec, _value_of(config, spec)),
                source=source,
                doc=spec.doc,
                example=spec.example,
                format=spec.format,
                default=display(spec, own_defaults.get(spec.name, spec.default)),
                env_var=spec.env_var,
            )
        )
    return entries


def env_override(key: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable that overrides ``key`` right now, if any (for a note after set)."""
    spec = lookup(key)
    env = os.environ if environ is None else environ
    return spec.env_var if env.get(spec.env_var) else None


def set_value(config_dir: Path, key: str, raw: str) -> str:
    """Validate and store ``raw`` for ``key``; the value as stored.

    A relative path is stored absolute (relative to the current directory);
    the returned text shows what was stored.
    """
    spec = lookup(key)
    raw = absolute_if_path(spec, raw)
    value = parse_value(spec, raw)
    path = config_file(config_dir)
    document = read_document(path) or tomlkit.document()
    table, needs_gap = _table_for(document, spec, path)
    table[spec.field] = to_toml(spec, value)
    if needs_gap and isinstance(table, Table):
        table.add(tomlkit.nl())
    _write_if_valid(path, document)
    return display(spec, value, reveal=False)


# Keys naming a file that must already be there when the agent runs, and what
# it should hold. Others (device.cert_path, run.path, logs.path, the socket)
# are written by the agent itself, so their absence says nothing.
_EXISTING_FILES = {
    "root_cert_path": "a CA certificate file (PEM) or a directory of them",
    "module_path": "the PKCS#11 module (a shared library)",
    "key_path": "the device's private key (PEM)",
}


def set_warnings(key: str, stored: str) -> list[str]:
    """What is odd about a value `set` stored, for a warning; it was stored all the same.

    A path may be set before the file is installed (provisioning in steps),
    so a missing file is a warning, not a refusal: connect and doctor refuse
    it with its own error.
    """
    spec = lookup(key)
    what = _EXISTING_FILES.get(spec.field)
    if what is None or not stored:
        return []
    path = Path(stored)
    if not path.exists():
        return [f"{stored} does not exist (yet); {key} must name {what}"]
    if spec.field == "root_cert_path" and path.is_file():
        try:
            with path.open("rb") as handle:
                head = handle.read(1 << 20)
        except OSError as error:
            return [f"{stored} cannot be read ({error.strerror}); {key} must name {what}"]
        if b"-----BEGIN CERTIFICATE-----" not in head:
            return [f"{stored} holds no PEM certificate; {key} must name {what}"]
    if spec.field != "root_cert_path" and path.is_dir():
        return [f"{stored} is a directory; {key} must name {what}"]
    return []


def unset(config_dir: Path, key: str) -> bool:
    """Remove ``key`` from agent.toml; False (and no write) if it was not there."""
    spec = lookup(key)
    path = config_file(config_dir)
    document = read_document(path)
    if document is None:
        return False
    found, table = nested_get(document, spec.path[:-1])
    if not found or not isinstance(table, MutableMapping) or spec.field not in table:
        return False
    del table[spec.field]
    _drop_empty_tables(document, spec.path[:-1])
    _write_if_valid(path, document)
    return True


def _drop_empty_tables(document: TOMLDocument, parents: tuple[str, ...]) -> None:
    """Remove the tables on ``parents`` that an unset left with nothing in them.

    Innermost first: ``[device.cryptoki]`` goes, then ``device`` if nothing
    else is under it. A table that still holds a comment is the user's text
    and stays.
    """
    for depth in range(len(parents), 0, -1):
        found, table = nested_get(document, parents[:depth])
        if not found or not isinstance(table, MutableMapping) or len(table) or _has_comment(table):
            return
        _, parent = nested_get(document, parents[: depth - 1])
        del parent[parents[depth - 1]]


def _has_comment(table: Any) -> bool:
    body = table.value.body if isinstance(table, Table) else []
    return any(isinstance(item, Comment) for _, item in body)


def _table_for(
    document: TOMLDocument, spec: KeySpec, path: Path
) -> tuple[MutableMapping[str, Any], bool]:
    """The table holding ``spec`` in the document, created if missing.

    Also whether a newly created table should end with a blank line.
    """
    node: MutableMapping[str, Any] = document
    parents = spec.path[:-1]
    needs_gap = False
    for depth, part in enumerate(parents):
        if part not in node:
            # A table holding only sub-tables gets no header of its own:
            # `[device.cryptoki]` rather than an empty `[device]` above it.
            node[part] = tomlkit.table(is_super_table=depth < len(parents) - 1)
            # tomlkit places a new sub-table right after its parent's keys;
            # unless that is the end of the file, a blank line after it keeps it
            # apart from the section that follows.
            needs_gap = depth > 0 and list(document)[-1] != parents[0]
        child = node[part]
        if not isinstance(child, MutableMapping):
            section = ".".join(parents[: depth + 1])
            raise InvalidConfigValue(
                f"{section} in {path} is a value, but it is a section of keys",
                f"edit {path}: make {section} a table ([{section}])",
            )
        node = child
    return node, needs_gap


def _write_if_valid(path: Path, document: TOMLDocument) -> None:
    """Validate the whole file as it would be written (no environment), then write."""
    try:
        config = AgentConfig.model_validate(document.unwrap())
    except ValidationError as error:
        raise config_error(error, "", lambda name: f"{name} in {path}") from None
    holds_secret = any(spec.secret and _value_of(config, spec) is not None for spec in all_keys())
    write_document(path, document, file_mode(path, holds_secret))

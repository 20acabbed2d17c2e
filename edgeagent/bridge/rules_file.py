"""Bridge rules as a TOML file: what `edgeagent/clouds/rules/<cloud>.toml` says.

    local_prefix = "aws/"                      # the default for every rule below
    remote_prefix = "thinedge/{device_id}/"

    [[rule]]
    direction = "out"                          # out: local -> cloud, in: cloud -> local, both
    topic = "td/#"                             # MQTT filter after the prefixes

    [[rule]]
    direction = "both"
    remote_prefix = "$aws/things/{device_id}/" # a rule's own prefix wins over the file's
    topic = "shadow/#"

    [[rule]]
    direction = "out"                          # topic = "": each prefix is one whole topic
    local_prefix = "aws/test-connection"
    remote_prefix = "thinedge/devices/{device_id}/test-connection"
    topic = ""

The short form is the same thing: ``outbound = [filters]`` and
``inbound = [filters]`` are one out (in) rule per filter with the file's
prefixes, in that order, before the ``[[rule]]`` tables. Rules are tried in
file order; the first that matches a topic maps it.

Every key is checked: an unknown key (a typo), a missing prefix, a value of
the wrong type or a rule `BridgeRule` refuses is a `ConfigError` that names
the file, the rule and the fix.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import cast

from edgeagent.bridge.rule import BridgeRule, Direction, RuleError
from edgeagent.errors import ConfigError

_FILE_KEYS = ("local_prefix", "remote_prefix", "outbound", "inbound", "rule")
_RULE_KEYS = ("direction", "local_prefix", "remote_prefix", "topic")
_SHORT_FORMS: tuple[tuple[str, Direction], ...] = (("outbound", "out"), ("inbound", "in"))


def read_rules(path: Path) -> tuple[BridgeRule, ...]:
    """The rules in the TOML file at ``path``, checked."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(
            f"cannot read bridge rules {path}: {error.strerror}",
            "reinstall edgeagent or fix the file's permissions",
        ) from error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"bridge rules {path} are not valid TOML: {error}", f"fix the TOML syntax in {path}"
        ) from error
    return parse_rules(data, str(path))


def parse_rules(data: Mapping[str, object], source: str) -> tuple[BridgeRule, ...]:
    """The rules in a parsed rules file; ``source`` names it in errors."""
    where = f"bridge rules {source}"
    _refuse_unknown_keys(data, _FILE_KEYS, where, "at the top of the file")
    defaults = {
        name: _string(data[name], f"{where}: {name}", name)
        for name in ("local_prefix", "remote_prefix")
        if name in data
    }
    rules: list[BridgeRule] = []
    for key, direction in _SHORT_FORMS:
        if key not in data:
            continue
        topics = data[key]
        if not isinstance(topics, list):
            raise ConfigError(
                f"{where}: {key} is not a list of topic filters",
                f'write {key} = ["topic/filter", ...]',
            )
        for i, topic in enumerate(topics):
            label = f"{where}, {key}[{i}]"
            fields = {"direction": direction, "topic": _string(topic, label, "topic")}
            rules.append(_make_rule(fields, defaults, label))
    tables = data.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(
            f"{where}: rule is not a list of tables", "write each rule as a [[rule]] table"
        )
    for number, table in enumerate(cast("list[dict[str, object]]", tables), start=1):
        topic = table.get("topic")
        label = f"{where}, [[rule]] {number}" + (f" (topic {topic!r})" if topic else "")
        _refuse_unknown_keys(table, _RULE_KEYS, label, "in a [[rule]]")
        for name in ("direction", "topic"):
            if name not in table:
                example = '"out", "in" or "both"' if name == "direction" else '"a/#" (or "")'
                raise ConfigError(f"{label} has no {name}", f"add {name} = {example}")
        fields = {name: _string(table[name], label, name) for name in _RULE_KEYS if name in table}
        rules.append(_make_rule(fields, defaults, label))
    if not rules:
        raise ConfigError(
            f"{where} define no rule: nothing would cross the bridge",
            "add [[rule]] tables (or outbound / inbound lists) to the file",
        )
    return tuple(rules)


def _make_rule(fields: dict[str, str], defaults: dict[str, str], label: str) -> BridgeRule:
    prefixes = {}
    for name in ("local_prefix", "remote_prefix"):
        value = fields.get(name, defaults.get(name))
        if value is None:
            raise ConfigError(
                f"{label} has no {name}",
                f'set {name} in the rule or at the top of the file ({name} = "" for none)',
            )
        prefixes[name] = value
    try:
        return BridgeRule(
            cast("Direction", fields["direction"]),
            prefixes["local_prefix"],
            prefixes["remote_prefix"],
            fields["topic"],
        )
    except RuleError as error:
        raise ConfigError(f"{label}: {error.problem}", error.fix) from error


def _string(value: object, label: str, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{label}: {name} is not a string: {value!r}", f'write {name} = "..."')
    return value


def _refuse_unknown_keys(
    table: Mapping[str, object], known: tuple[str, ...], label: str, place: str
) -> None:
    unknown = [key for key in table if key not in known]
    if unknown:
        raise ConfigError(
            f"{label}: unknown key {unknown[0]!r} {place}",
            f"the keys {place} are {', '.join(known)}",
        )

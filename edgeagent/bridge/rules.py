"""Bridge topic rules for one device: which topics cross, and how their names change.

    rules = TopicRules.load(Path("aws.toml"), device_id="device-042")
    rules.local_filters()     # subscribe to these on the local broker
    rules.remote_filters()    # ... and to these on the cloud
    rules.to_remote("aws/shadow/update")         # "$aws/things/device-042/shadow/update"
    rules.to_local("thinedge/device-042/cmd/x")  # "aws/cmd/x"
    rules.to_remote("aws/not/in/any/rule")       # None: never crosses

The rules themselves (`BridgeRule`) and their file (`rules_file`) are next
door. Mapping a topic is the bridge's hot path: each rule is compiled once
into a prefix and pre-split filter levels, and a topic is tried against the
rules of its direction in order (the first match wins): no regular
expressions, nothing built per message but the mapped name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeagent.bridge.rule import BridgeRule, RuleError, check_device_id
from edgeagent.bridge.rules_file import read_rules
from edgeagent.bridge.topics import filters_overlap, levels_match, topic_matches
from edgeagent.errors import ConfigError

__all__ = ["TopicRules", "topic_matches"]  # topic_matches: where callers found it first


@dataclass(frozen=True, slots=True)
class _Route:
    """One rule, one direction, compiled: source topic -> target topic."""

    source_prefix: str
    target_prefix: str
    levels: tuple[str, ...]  # the filter after the prefix, split; () for a whole-topic rule
    # With no prefix, a filter starting with a wildcard never matches '$' topics.
    guards_dollar: bool

    @classmethod
    def compile(cls, source_prefix: str, target_prefix: str, topic: str) -> _Route:
        levels = tuple(topic.split("/")) if topic else ()
        guards = not source_prefix and topic[:1] in ("+", "#")
        return cls(source_prefix, target_prefix, levels, guards)


def _apply(routes: tuple[_Route, ...], topic: str) -> str | None:
    """The first route's mapping of ``topic``, or None."""
    # Rules mostly share their prefix: split the rest of the topic once per prefix.
    split_prefix: str | None = None
    rest, rest_levels = "", [""]
    for route in routes:
        prefix = route.source_prefix
        if not topic.startswith(prefix):
            continue
        levels = route.levels
        if not levels:
            if len(topic) == len(prefix):
                return route.target_prefix
            continue
        if prefix != split_prefix:
            split_prefix = prefix
            rest = topic[len(prefix) :]
            rest_levels = rest.split("/")
        first = levels[0]
        if first != rest_levels[0] and first != "+" and first != "#":
            continue  # the common miss, without a call
        if route.guards_dollar and rest.startswith("$"):
            continue
        if levels_match(levels, rest_levels):
            return route.target_prefix + rest
    return None


class TopicRules:
    """The rules of one cloud, bound to one device: mapping both ways."""

    def __init__(self, rules: Iterable[BridgeRule]) -> None:
        self.rules = tuple(rules)
        unbound = [str(r) for r in self.rules if r.needs_device_id]
        if unbound:
            raise ValueError(f"rules not bound to a device: {', '.join(unbound)}")
        self._out = tuple(
            _Route.compile(r.local_prefix, r.remote_prefix, r.topic)
            for r in self.rules
            if r.outbound
        )
        self._in = tuple(
            _Route.compile(r.remote_prefix, r.local_prefix, r.topic)
            for r in self.rules
            if r.inbound
        )
        self.may_echo = _may_echo(self.rules)
        """Whether a forwarded message could come back as one to forward back
        (see `edgeagent.bridge.echoes`); False for rules that are one way only."""

    @classmethod
    def load(cls, path: Path, *, device_id: str | None = None) -> TopicRules:
        """The rules in ``path`` for ``device_id`` (needed if they say ``{device_id}``)."""
        return cls.bind(read_rules(path), device_id, source=str(path))

    @classmethod
    def bind(
        cls, rules: Iterable[BridgeRule], device_id: str | None, *, source: str = "the rules"
    ) -> TopicRules:
        rules = tuple(rules)
        if device_id is None:
            if any(r.needs_device_id for r in rules):
                raise ConfigError(
                    f"bridge rules {source} use {{device_id}}, but no device id was given",
                    "load them with the device id (the device certificate's CN)",
                )
            return cls(rules)
        try:
            check_device_id(device_id)
        except RuleError as error:
            raise ConfigError(f"bridge rules {source}: {error.problem}", error.fix) from error
        return cls(r.bind(device_id) for r in rules)

    def local_filters(self) -> list[str]:
        """Filters to subscribe to on the local broker (outbound traffic)."""
        return _unique(r.local_filter for r in self.rules if r.outbound)

    def remote_filters(self) -> list[str]:
        """Filters to subscribe to on the cloud (inbound traffic)."""
        return _unique(r.remote_filter for r in self.rules if r.inbound)

    def to_remote(self, local_topic: str) -> str | None:
        """The cloud topic for a local one, or None if no outbound rule covers it."""
        return _apply(self._out, local_topic)

    def to_local(self, remote_topic: str) -> str | None:
        """The local topic for a cloud one, or None if no inbound rule covers it."""
        return _apply(self._in, remote_topic)


def _unique(filters: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(filters))


def _may_echo(rules: tuple[BridgeRule, ...]) -> bool:
    # A message sent out under rule o comes back under rule i only if some
    # topic is under both on each side.
    outs = [r for r in rules if r.outbound]
    ins = [r for r in rules if r.inbound]
    return any(
        filters_overlap(o.local_filter, i.local_filter)
        and filters_overlap(o.remote_filter, i.remote_filter)
        for o in outs
        for i in ins
    )

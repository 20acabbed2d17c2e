"""One bridge rule: a topic filter between a local and a remote prefix, and a direction.

    rule = BridgeRule("both", "aws/", "$aws/things/{device_id}/", "shadow/#")
    rule.bind("device-042").remote_filter      # "$aws/things/device-042/shadow/#"

The local topic ``local_prefix + rest`` and the remote topic
``remote_prefix + rest`` are the same message, for every ``rest`` that
matches ``topic``. With ``topic = ""`` each prefix is one whole topic: a
rename (``aws/test-connection`` -> ``thinedge/devices/{device_id}/test-connection``).
``{device_id}`` stands for the device's id (its certificate's CN) until
the rule is bound to a device.

A rule that cannot mean what its author meant is refused when it is made,
with a `RuleError` that says what is wrong and how to fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal, get_args

from edgeagent.bridge.topics import filter_problem

Direction = Literal["out", "in", "both"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
DEVICE_ID = "{device_id}"

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NOT_IN_DEVICE_ID = {"/": "'/'", "+": "'+'", "#": "'#'", "\0": "a NUL character"}


class RuleError(ValueError):
    """A rule that the bridge refuses: what is wrong (``problem``) and the ``fix``."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class BridgeRule:
    direction: Direction  # out: local -> cloud, in: cloud -> local, both: each way
    local_prefix: str
    remote_prefix: str
    topic: str  # MQTT topic filter after the prefixes; "" = each prefix is a whole topic

    def __post_init__(self) -> None:
        _check(self)

    @property
    def outbound(self) -> bool:
        return self.direction != "in"

    @property
    def inbound(self) -> bool:
        return self.direction != "out"

    @property
    def local_filter(self) -> str:
        """What the bridge subscribes to locally (out) and what it publishes under (in)."""
        return self.local_prefix + self.topic

    @property
    def remote_filter(self) -> str:
        return self.remote_prefix + self.topic

    @property
    def needs_device_id(self) -> bool:
        return DEVICE_ID in self.local_prefix + self.remote_prefix + self.topic

    def bind(self, device_id: str) -> BridgeRule:
        """This rule for one device: ``{device_id}`` replaced (see `check_device_id`)."""
        if not self.needs_device_id:
            return self
        return replace(
            self,
            local_prefix=self.local_prefix.replace(DEVICE_ID, device_id),
            remote_prefix=self.remote_prefix.replace(DEVICE_ID, device_id),
            topic=self.topic.replace(DEVICE_ID, device_id),
        )

    def __str__(self) -> str:
        arrow = {"out": "->", "in": "<-", "both": "<->"}[self.direction]
        return f"{self.direction}: {self.local_filter} {arrow} {self.remote_filter}"


def check_device_id(device_id: str) -> None:
    """Refuse a device id that would change the shape of the topics it is put in."""
    if not device_id:
        raise RuleError(
            "the device id is empty", "issue the device certificate with CN = the device id"
        )
    for char, name in _NOT_IN_DEVICE_ID.items():
        if char in device_id:
            raise RuleError(
                f"the device id {device_id!r} contains {name}, which MQTT topics cannot carry "
                "as part of a name",
                "issue the device certificate with a CN of letters, digits, '-', '_', ':' or '.'",
            )


def _check(rule: BridgeRule) -> None:
    if rule.direction not in DIRECTIONS:
        raise RuleError(
            f"direction {rule.direction!r} is not one of {', '.join(DIRECTIONS)}",
            'write direction = "out" (local -> cloud), "in" (cloud -> local) or "both"',
        )
    fields = {
        "local_prefix": rule.local_prefix,
        "remote_prefix": rule.remote_prefix,
        "topic": rule.topic,
    }
    for name, value in fields.items():
        for placeholder in _PLACEHOLDER.findall(value):
            if "{" + placeholder + "}" != DEVICE_ID:
                raise RuleError(
                    f"{name} {value!r} names an unknown placeholder {{{placeholder}}}",
                    f"the only placeholder is {DEVICE_ID} (the device's certificate CN)",
                )
        if "\0" in value:
            raise RuleError(f"{name} {value!r} contains a NUL character", f"remove it from {name}")
    for name in ("local_prefix", "remote_prefix"):
        value = fields[name]
        if "+" in value or "#" in value:
            raise RuleError(
                f"{name} {value!r} contains a wildcard; a prefix is plain text",
                'move the wildcard into topic, e.g. topic = "#"',
            )
    if rule.topic:
        _check_filter_rule(rule, fields)
    else:
        _check_whole_topic_rule(fields)


def _check_filter_rule(rule: BridgeRule, fields: dict[str, str]) -> None:
    problem = filter_problem(rule.topic)
    if problem:
        raise RuleError(
            f"topic {rule.topic!r} is not a valid MQTT topic filter: {problem}",
            "'#' may only be a whole last level and '+' only a whole level",
        )
    for name in ("local_prefix", "remote_prefix"):
        value = fields[name]
        if value and not value.endswith("/"):
            raise RuleError(
                f"{name} {value!r} does not end with '/': the topics would be "
                f"{value + rule.topic!r}",
                f'write {name} = "{value}/", or topic = "" to map the one topic {value!r}',
            )


def _check_whole_topic_rule(fields: dict[str, str]) -> None:
    for name in ("local_prefix", "remote_prefix"):
        value = fields[name]
        if not value:
            raise RuleError(
                f"topic is empty, so {name} must be a whole topic, but it is empty too",
                f'set {name} to the topic\'s full name, or set topic to a filter such as "#"',
            )
        if value.endswith("/"):
            raise RuleError(
                f"topic is empty, so {name} {value!r} is a whole topic, but it ends with '/'",
                f'set topic (e.g. "#") to map the topics under {value!r}, '
                "or drop the '/' to map that one topic",
            )

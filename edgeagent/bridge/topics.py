"""MQTT topic names and filters, as the bridge needs them (MQTT 3.1.1, section 4.7).

topic_matches("s/us/#", "s/us")           # True: '#' includes the parent level
topic_matches("#", "$aws/things/x")       # False: wildcards never match a leading '$'
filters_overlap("a/+/c", "a/b/#")         # True: a/b/c matches both
filter_problem("s/#/x")                   # "'#' is not the last level": not a filter
"""

from __future__ import annotations

from collections.abc import Sequence


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (``+`` one level, ``#`` the rest)."""
    # A topic starting with '$' is matched only by a filter that names that
    # first level itself (MQTT 3.1.1, 4.7.2): '#' does not see $SYS or $aws.
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    return levels_match(topic_filter.split("/"), topic.split("/"))


def levels_match(filter_levels: Sequence[str], topic_levels: Sequence[str]) -> bool:
    """`topic_matches` on pre-split levels, without the '$' rule (the caller's part)."""
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)


def filters_overlap(first: str, second: str) -> bool:
    """Whether some topic could match both filters (an over-estimate for '$' topics)."""
    a, b = first.split("/"), second.split("/")
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and x != "+" and y != "+":
            return False
    return True


def filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid MQTT topic filter, or None if it is."""
    if not topic_filter:
        return "it is empty"
    if "\0" in topic_filter:
        return "it contains a NUL character"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' may only be the whole last level"
        if "+" in level and level != "+":
            return "'+' may only be a whole level"
    return None

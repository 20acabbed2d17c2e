"""Bridge topic rules: which topics cross, and how their names change.

rules = TopicRules.load(Path("c8y.toml"))
rules.local_filters()        # subscribe to these on the local broker
rules.to_remote("c8y/s/us")  # -> "s/us"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from edgeagent.errors import ConfigError


@dataclass(frozen=True)
class TopicRules:
    """Prefix-mapped topic filters for one cloud, in both directions."""

    local_prefix: str
    remote_prefix: str
    outbound: tuple[str, ...]
    inbound: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> TopicRules:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as error:
            raise ConfigError(
                f"cannot read bridge rules {path}: {error.strerror}",
                "reinstall edgeagent or fix the file's permissions",
            ) from error
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"bridge rules {path} are not valid TOML: {error}") from error
        try:
            rules = cls(
                local_prefix=str(data["local_prefix"]),
                remote_prefix=str(data["remote_prefix"]),
                outbound=tuple(str(t) for t in data["outbound"]),
                inbound=tuple(str(t) for t in data["inbound"]),
            )
        except (KeyError, TypeError) as error:
            raise ConfigError(
                f"bridge rules {path} lack {error}",
                "each rules file needs local_prefix, remote_prefix, outbound and inbound",
            ) from error
        for topic in rules.outbound + rules.inbound:
            _check_filter(path, topic)
        return rules

    def local_filters(self) -> list[str]:
        """Filters to subscribe to on the local broker (outbound traffic)."""
        return [self.local_prefix + t for t in self.outbound]

    def remote_filters(self) -> list[str]:
        """Filters to subscribe to on the cloud (inbound traffic)."""
        return [self.remote_prefix + t for t in self.inbound]

    def to_remote(self, local_topic: str) -> str | None:
        """The cloud topic for a local one, or None if no outbound rule covers it."""
        if not local_topic.startswith(self.local_prefix):
            return None
        rest = local_topic[len(self.local_prefix) :]
        if not any(topic_matches(f, rest) for f in self.outbound):
            return None
        return self.remote_prefix + rest

    def to_local(self, remote_topic: str) -> str | None:
        """The local topic for a cloud one, or None if no inbound rule covers it."""
        if not remote_topic.startswith(self.remote_prefix):
            return None
        rest = remote_topic[len(self.remote_prefix) :]
        if not any(topic_matches(f, rest) for f in self.inbound):
            return None
        return self.local_prefix + rest


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic-filter matching (``+`` one level, ``#`` the rest, parent included)."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)


def _check_filter(path: Path, topic_filter: str) -> None:
    levels = topic_filter.split("/")
    bad = (
        not topic_filter
        or any("#" in lvl and lvl != "#" for lvl in levels)
        or "#" in levels[:-1]
        or any("+" in lvl and lvl != "+" for lvl in levels)
    )
    if bad:
        raise ConfigError(
            f"bridge rules {path}: {topic_filter!r} is not a valid MQTT topic filter",
            "'#' may only be a whole last level and '+' only a whole level",
        )

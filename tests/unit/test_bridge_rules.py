from pathlib import Path

import pytest

from edgeagent.bridge.rules import TopicRules, topic_matches
from edgeagent.clouds.profile import rules_path
from edgeagent.errors import ConfigError


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("s/us", "s/us", True),
        ("s/us", "s/us/x", False),
        ("s/us/#", "s/us", True),  # '#' includes the parent level
        ("s/us/#", "s/us/a/b", True),
        ("s/+/x", "s/us/x", True),
        ("s/+/x", "s/us/y", False),
        ("s/+", "s/us/x", False),
        ("#", "anything/at/all", True),
        ("error", "errors", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_shipped_c8y_rules_map_both_ways(tmp_path: Path) -> None:
    rules = TopicRules.load(rules_path("c8y", tmp_path))
    assert "c8y/s/us" in rules.local_filters()
    assert rules.to_remote("c8y/s/us") == "s/us"
    assert rules.to_remote("c8y/measurement/measurements/create/x") == (
        "measurement/measurements/create/x"
    )
    assert rules.to_local("s/ds") == "c8y/s/ds"
    assert rules.to_local("devicecontrol/notifications") == "c8y/devicecontrol/notifications"
    # Not covered by any rule: never forwarded.
    assert rules.to_remote("c8y/s/ds") is None
    assert rules.to_remote("other/s/us") is None
    assert rules.to_local("s/us") is None


def test_user_copy_in_config_dir_wins(tmp_path: Path) -> None:
    own = tmp_path / "bridge" / "c8y.toml"
    own.parent.mkdir()
    own.write_text(
        'local_prefix = "cloud/"\nremote_prefix = ""\noutbound = ["a"]\ninbound = ["b"]\n'
    )
    rules = TopicRules.load(rules_path("c8y", tmp_path))
    assert rules.to_remote("cloud/a") == "a"


@pytest.mark.parametrize(
    "content",
    [
        'local_prefix = "c8y/"\nremote_prefix = ""\noutbound = ["s/#/x"]\ninbound = []\n',
        'local_prefix = "c8y/"\nremote_prefix = ""\noutbound = ["s/u+"]\ninbound = []\n',
        'local_prefix = "c8y/"\noutbound = []\ninbound = []\n',
        "local_prefix = [\n",
    ],
)
def test_bad_rules_are_refused_with_the_file_named(tmp_path: Path, content: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match="rules"):
        TopicRules.load(path)

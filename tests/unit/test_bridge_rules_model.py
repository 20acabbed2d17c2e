"""Bridge rules as data: the rule model, its file form, its errors, binding to a device."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent.bridge.rule import BridgeRule, RuleError
from edgeagent.bridge.rules import TopicRules
from edgeagent.bridge.topics import filter_problem, filters_overlap, topic_matches
from edgeagent.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("#", "$iothub/twin/res/200", False),
        ("+/twin/res/200", "$iothub/twin/res/200", False),
        ("$iothub/#", "$iothub/twin/res/200", True),
        ("$iothub/+/res/#", "$iothub/twin/res/200", True),
        ("az/#", "az/$iothub", True),  # '$' is special only as the first character
        ("a/+", "a/", True),
        ("a/+", "a", False),
    ],
)
def test_topic_matches_follows_mqtt(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("a/+/c", "a/b/#", True),
        ("a/#", "a", True),
        ("a/b", "a/b/c", False),
        ("a/+", "b/+", False),
        ("+", "a/b", False),
        ("#", "anything/at/all", True),
    ],
)
def test_filters_overlap(first: str, second: str, expected: bool) -> None:
    assert filters_overlap(first, second) is expected
    assert filters_overlap(second, first) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "+a", "a\0b"])
def test_filter_problem_names_bad_filters(bad: str) -> None:
    assert filter_problem(bad)


def test_a_whole_topic_rule_maps_that_one_topic_only() -> None:
    rules = TopicRules([BridgeRule("out", "local/one", "cloud/other/name", "")])
    assert rules.to_remote("local/one") == "cloud/other/name"
    assert rules.to_remote("local/one/x") is None
    assert rules.to_remote("local/on") is None
    assert rules.to_remote("local/onex") is None
    assert rules.local_filters() == ["local/one"]
    assert rules.remote_filters() == []


def test_the_first_matching_rule_wins() -> None:
    rules = TopicRules(
        [BridgeRule("out", "a/", "special/", "x"), BridgeRule("out", "a/", "general/", "#")]
    )
    assert rules.to_remote("a/x") == "special/x"
    assert rules.to_remote("a/y") == "general/y"
    assert rules.local_filters() == ["a/x", "a/#"]


def test_an_empty_prefix_with_a_leading_wildcard_never_carries_dollar_topics() -> None:
    rules = TopicRules([BridgeRule("in", "cloud/", "", "#"), BridgeRule("out", "", "up/", "+/x")])
    assert rules.to_local("a/b") == "cloud/a/b"
    assert rules.to_local("$iothub/twin/res/200") is None
    assert rules.to_remote("a/x") == "up/a/x"
    assert rules.to_remote("$a/x") is None


def test_short_form_and_rule_tables_mix_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'local_prefix = "l/"\nremote_prefix = "r/"\noutbound = ["a"]\ninbound = ["b"]\n'
        '[[rule]]\ndirection = "both"\ntopic = "c/#"\nremote_prefix = "other/"\n',
    )
    rules = TopicRules.load(path)
    assert [str(r) for r in rules.rules] == [
        "out: l/a -> r/a",
        "in: l/b <- r/b",
        "both: l/c/# <-> other/c/#",
    ]
    assert rules.local_filters() == ["l/a", "l/c/#"]
    assert rules.remote_filters() == ["r/b", "other/c/#"]
    assert rules.to_local("other/c/d") == "l/c/d"
    assert rules.to_remote("l/c/d") == "other/c/d"


def test_device_id_is_put_in_prefixes_and_filters(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'local_prefix = "l/{device_id}/"\nremote_prefix = "r/{device_id}/"\n'
        '[[rule]]\ndirection = "in"\ntopic = "x/{device_id}/#"\n',
    )
    rules = TopicRules.load(path, device_id="dev-9")
    assert rules.remote_filters() == ["r/dev-9/x/dev-9/#"]
    assert rules.to_local("r/dev-9/x/dev-9/y") == "l/dev-9/x/dev-9/y"
    assert rules.to_local("r/dev-8/x/dev-8/y") is None


def test_rules_that_name_the_device_need_a_device_id(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'local_prefix = "l/"\nremote_prefix = "r/{device_id}/"\noutbound = ["#"]\n'
    )
    with pytest.raises(ConfigError, match=r"use \{device_id\}, but no device id"):
        TopicRules.load(path)
    with pytest.raises(ValueError, match="not bound"):
        TopicRules([BridgeRule("out", "l/", "r/{device_id}/", "#")])


@pytest.mark.parametrize(
    ("device_id", "what"),
    [("", "empty"), ("a/b", "'/'"), ("a+", "'\\+'"), ("a#", "'#'"), ("a\0b", "NUL")],
)
def test_a_device_id_that_would_change_the_topics_is_refused(
    tmp_path: Path, device_id: str, what: str
) -> None:
    path = write(
        tmp_path, 'local_prefix = "l/"\nremote_prefix = "r/{device_id}/"\noutbound = ["#"]\n'
    )
    with pytest.raises(ConfigError, match=what) as caught:
        TopicRules.load(path, device_id=device_id)
    assert str(path) in str(caught.value)
    assert "certificate" in caught.value.fix


RULE = '[[rule]]\ndirection = "out"\n'


@pytest.mark.parametrize(
    ("content", "cause", "fix"),
    [
        (
            'remote_prefx = ""\nlocal_prefix = "a/"\noutbound = ["x"]\n',
            "unknown key 'remote_prefx' at the top of the file",
            "local_prefix, remote_prefix, outbound, inbound, rule",
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\n[[rule]]\ndirection = "out"\ntopc = "x"\n',
            "[[rule]] 1: unknown key 'topc' in a [[rule]]",
            "direction, local_prefix, remote_prefix, topic",
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\n[[rule]]\ndirection = "up"\ntopic = "x"\n',
            "[[rule]] 1 (topic 'x'): direction 'up' is not one of out, in, both",
            'direction = "out"',
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\n[[rule]]\ntopic = "x"\n',
            "[[rule]] 1 (topic 'x') has no direction",
            "add direction",
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\n' + RULE,
            "[[rule]] 1 has no topic",
            'add topic = "a/#" (or "")',
        ),
        (
            'local_prefix = "a/"\n' + RULE + 'topic = "x"\n',
            "[[rule]] 1 (topic 'x') has no remote_prefix",
            'remote_prefix = "" for none',
        ),
        (
            'local_prefix = "aws"\nremote_prefix = ""\n' + RULE + 'topic = "td/#"\n',
            "local_prefix 'aws' does not end with '/': the topics would be 'awstd/#'",
            'write local_prefix = "aws/", or topic = ""',
        ),
        (
            'local_prefix = "a/#/"\nremote_prefix = ""\n' + RULE + 'topic = "x"\n',
            "local_prefix 'a/#/' contains a wildcard",
            "move the wildcard into topic",
        ),
        (
            'local_prefix = "a/"\nremote_prefix = "{thing_name}/"\n' + RULE + 'topic = "x"\n',
            "remote_prefix '{thing_name}/' names an unknown placeholder {thing_name}",
            "the only placeholder is {device_id}",
        ),
        (
            'local_prefix = "a/one"\nremote_prefix = ""\n' + RULE + 'topic = ""\n',
            "topic is empty, so remote_prefix must be a whole topic, but it is empty too",
            "set remote_prefix to the topic's full name",
        ),
        (
            'local_prefix = "a/"\nremote_prefix = "b"\n' + RULE + 'topic = ""\n',
            "topic is empty, so local_prefix 'a/' is a whole topic, but it ends with '/'",
            'set topic (e.g. "#")',
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\n'
            + RULE
            + 'topic = "ok"\n'
            + RULE
            + 'topic = "s/#/x"\n',
            "[[rule]] 2 (topic 's/#/x'): topic 's/#/x' is not a valid MQTT topic filter",
            "'#' may only be a whole last level",
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\noutbound = ["ok", "s/u+"]\n',
            "outbound[1]: topic 's/u+' is not a valid MQTT topic filter",
            "'+' only a whole level",
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\noutbound = [3]\n',
            "outbound[0]: topic is not a string: 3",
            'write topic = "..."',
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\noutbound = "s/us"\n',
            "outbound is not a list of topic filters",
            'write outbound = ["topic/filter", ...]',
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\n[rule]\ndirection = "out"\ntopic = "x"\n',
            "rule is not a list of tables",
            "write each rule as a [[rule]] table",
        ),
        (
            'local_prefix = "a/"\nremote_prefix = ""\noutbound = []\ninbound = []\n',
            "define no rule: nothing would cross the bridge",
            "add [[rule]] tables",
        ),
        ("local_prefix = [\n", "are not valid TOML", "fix the TOML syntax"),
    ],
)
def test_a_bad_rules_file_names_the_file_the_rule_and_the_fix(
    tmp_path: Path, content: str, cause: str, fix: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        TopicRules.load(path)
    assert f"bridge rules {path}" in caught.value.cause
    assert cause in caught.value.cause
    assert fix in caught.value.fix


def test_an_unreadable_rules_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read bridge rules"):
        TopicRules.load(tmp_path / "missing.toml")


def test_rules_are_checked_when_made() -> None:
    with pytest.raises(RuleError, match="does not end with '/'") as caught:
        BridgeRule("in", "a", "b/", "#")
    assert caught.value.fix


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([BridgeRule("both", "l/", "r/", "#")], True),
        ([BridgeRule("out", "l/", "r/", "x/#"), BridgeRule("in", "l/", "r/", "x/y")], True),
        ([BridgeRule("out", "l/", "r/", "x/#"), BridgeRule("in", "l/", "r/", "y/#")], False),
        # Same remote topic both ways, different local names: a rename, no loop.
        (
            [BridgeRule("out", "l/ping", "r/ping", ""), BridgeRule("in", "l/pong", "r/ping", "")],
            False,
        ),
    ],
)
def test_may_echo_only_when_a_topic_could_come_back_to_itself(
    rules: list[BridgeRule], expected: bool
) -> None:
    assert TopicRules(rules).may_echo is expected

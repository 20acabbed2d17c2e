"""The shipped bridge rules (c8y, az, aws): every rule each way, and nothing else crosses."""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import pytest
from paho.mqtt.client import topic_matches_sub

from edgeagent.bridge.rules import TopicRules

REPO = Path(__file__).resolve().parents[2]
PACKAGED = REPO / "edgeagent" / "clouds" / "rules"
EXAMPLES = REPO / "config" / "bridge"
DEVICE = "dev-1"


def shipped(cloud: str) -> TopicRules:
    return TopicRules.load(PACKAGED / f"{cloud}.toml", device_id=DEVICE)


def test_the_packaged_rules_and_the_config_examples_are_the_same_files() -> None:
    packaged = {p.name: p.read_bytes() for p in PACKAGED.glob("*.toml")}
    examples = {p.name: p.read_bytes() for p in EXAMPLES.glob("*.toml")}
    assert sorted(packaged) == ["aws.toml", "az.toml", "c8y.toml"]
    assert examples == packaged


# -- c8y: the first rules file keeps its meaning ----------------------------------------------


def _old_to_remote(data: dict[str, list[str] | str], topic: str) -> str | None:
    """What the bridge did before rules had directions: prefix swap, filters after it."""
    local, remote = str(data["local_prefix"]), str(data["remote_prefix"])
    if not topic.startswith(local):
        return None
    rest = topic[len(local) :]
    if not any(topic_matches_sub(f, rest) for f in data["outbound"]):
        return None
    return remote + rest


def _old_to_local(data: dict[str, list[str] | str], topic: str) -> str | None:
    local, remote = str(data["local_prefix"]), str(data["remote_prefix"])
    if not topic.startswith(remote):
        return None
    rest = topic[len(remote) :]
    if not any(topic_matches_sub(f, rest) for f in data["inbound"]):
        return None
    return local + rest


def _instances(topic_filter: str) -> list[str]:
    """Topics that match the filter, and near misses that do not."""
    levels = topic_filter.split("/")
    stems: list[list[str]] = [[]]
    for level in levels:
        if level == "#":
            tails: list[list[str]] = [[], ["x"], ["x", "y", "z"], ["$z"], [""]]
            stems = [s + t for s in stems for t in tails]
        elif level == "+":
            stems = [[*s, v] for s in stems for v in ("a", "1", "", "$a")]
        else:
            stems = [[*s, v] for s in stems for v in (level, level + "x", level[:-1] or "q")]
    topics = ["/".join(s) for s in stems]
    return topics + [t + "/more" for t in topics] + [t[:-1] for t in topics if t]


def test_c8y_maps_every_topic_as_before() -> None:
    data = tomllib.loads((PACKAGED / "c8y.toml").read_text())
    rules = shipped("c8y")
    local, remote = str(data["local_prefix"]), str(data["remote_prefix"])
    filters = list(itertools.chain(data["outbound"], data["inbound"]))
    corpus = {""}
    for f in filters:
        for topic in _instances(f):
            corpus.update({topic, local + topic, remote + topic, "C8Y/" + topic, "$" + topic})
    corpus.update({"c8y", "c8y/", "c8y/#", "s", "s/", "#"})
    assert len(corpus) > 1000
    for topic in sorted(corpus):
        assert rules.to_remote(topic) == _old_to_remote(data, topic), topic
        assert rules.to_local(topic) == _old_to_local(data, topic), topic
    assert rules.local_filters() == [local + f for f in data["outbound"]]
    assert rules.remote_filters() == [remote + f for f in data["inbound"]]
    assert not rules.may_echo


# -- az and aws: each rule of issue 11, each way ----------------------------------------------

# (direction, local topic, remote topic): the two names of one message.
AZ = [
    ("out", "az/messages/events/temp", f"devices/{DEVICE}/messages/events/temp"),
    ("out", "az/messages/events/", f"devices/{DEVICE}/messages/events/"),
    ("out", "az/messages/events", f"devices/{DEVICE}/messages/events"),
    (
        "in",
        "az/messages/devicebound/%24.to=%2Fdevices&k=v",
        f"devices/{DEVICE}/messages/devicebound/%24.to=%2Fdevices&k=v",
    ),
    ("in", "az/methods/POST/reboot/?$rid=7", "$iothub/methods/POST/reboot/?$rid=7"),
    ("out", "az/methods/res/200/?$rid=7", "$iothub/methods/res/200/?$rid=7"),
    ("out", "az/twin/GET/?$rid=1", "$iothub/twin/GET/?$rid=1"),
    (
        "out",
        "az/twin/PATCH/properties/reported/?$rid=2",
        "$iothub/twin/PATCH/properties/reported/?$rid=2",
    ),
    ("in", "az/twin/res/200/?$rid=1", "$iothub/twin/res/200/?$rid=1"),
    ("in", "az/twin/res/204/?$rid=2&$version=3", "$iothub/twin/res/204/?$rid=2&$version=3"),
]
AWS = [
    ("out", "aws/td/temperature", f"thinedge/{DEVICE}/td/temperature"),
    ("out", "aws/td/a/b/c", f"thinedge/{DEVICE}/td/a/b/c"),
    ("in", "aws/cmd/restart", f"thinedge/{DEVICE}/cmd/restart"),
    ("both", "aws/shadow/update", f"$aws/things/{DEVICE}/shadow/update"),
    ("both", "aws/shadow/get/accepted", f"$aws/things/{DEVICE}/shadow/get/accepted"),
    (
        "both",
        "aws/shadow/name/lamp/update/delta",
        f"$aws/things/{DEVICE}/shadow/name/lamp/update/delta",
    ),
    ("out", "aws/test-connection", f"thinedge/devices/{DEVICE}/test-connection"),
]


@pytest.mark.parametrize(
    ("cloud", "direction", "local", "remote"), [("az", *r) for r in AZ] + [("aws", *r) for r in AWS]
)
def test_every_rule_maps_its_way_and_only_its_way(
    cloud: str, direction: str, local: str, remote: str
) -> None:
    rules = shipped(cloud)
    if direction in ("out", "both"):
        assert rules.to_remote(local) == remote
        # ...and the bridge is subscribed locally to what it maps.
        assert any(topic_matches_sub(f, local) for f in rules.local_filters())
    else:
        assert rules.to_remote(local) is None
        assert not any(topic_matches_sub(f, local) for f in rules.local_filters())
    if direction in ("in", "both"):
        assert rules.to_local(remote) == local
        # '$' topics included: the cloud-side filter names '$iothub' / '$aws' itself.
        assert any(topic_matches_sub(f, remote) for f in rules.remote_filters())
    else:
        # Never back under its own name (AWS's test-connection comes back renamed).
        assert rules.to_local(remote) != local


def test_aws_test_connection_comes_back_as_connection_success() -> None:
    rules = shipped("aws")
    remote = rules.to_remote("aws/test-connection")
    assert remote == f"thinedge/devices/{DEVICE}/test-connection"
    assert rules.to_local(remote) == "aws/connection-success"
    assert rules.to_remote("aws/connection-success") is None
    assert rules.to_remote("aws/test-connection/x") is None
    assert rules.to_remote("aws/test-connectionx") is None


@pytest.mark.parametrize(
    ("cloud", "local_topics", "remote_topics"),
    [
        (
            "az",
            [
                "az/messages/devicebound/x",  # in only
                "az/methods/POST/reboot",
                "az/twin/res/200/?$rid=1",
                "az/twin/DELETE/x",
                "az/other",
                "az",
                "az/",
                "messages/events/x",
                "c8y/s/us",
                "aws/td/x",
                "$iothub/twin/GET/?$rid=1",
            ],
            [
                "$iothub/twin/GET/?$rid=1",  # out only
                "$iothub/twin/PATCH/properties/reported",
                "$iothub/methods/res/200/?$rid=1",
                f"devices/{DEVICE}/messages/events/x",
                "devices/dev-2/messages/devicebound/x",  # another device
                "devices/+/messages/devicebound/x",
                "$iothub/other",
                "iothub/twin/res/200",
                "s/ds",
                "twin/res/200",
            ],
        ),
        (
            "aws",
            [
                "aws/cmd/x",  # in only
                "aws/connection-success",
                "aws/other",
                "aws",
                "aws/",
                "aws/tdx",
                "td/x",
                "c8y/s/us",
                f"thinedge/{DEVICE}/td/x",
            ],
            [
                f"thinedge/{DEVICE}/td/x",  # out only
                "thinedge/dev-2/cmd/x",  # another device
                "$aws/things/dev-2/shadow/update",
                f"$aws/things/{DEVICE}/jobs/notify",
                f"aws/things/{DEVICE}/shadow/update",
                f"thinedge/devices/{DEVICE}/test-connection/x",
                "thinedge/devices/dev-2/test-connection",
                "s/ds",
            ],
        ),
    ],
)
def test_nothing_outside_the_rules_crosses(
    cloud: str, local_topics: list[str], remote_topics: list[str]
) -> None:
    rules = shipped(cloud)
    for topic in local_topics:
        assert rules.to_remote(topic) is None, topic
    for topic in remote_topics:
        assert rules.to_local(topic) is None, topic


@pytest.mark.parametrize("cloud", ["c8y", "az", "aws"])
def test_no_local_filter_relies_on_a_wildcard_matching_a_dollar_topic(cloud: str) -> None:
    # '#' and '+' never match a leading '$': a subscription must name it.
    rules = shipped(cloud)
    for topic_filter in rules.local_filters() + rules.remote_filters():
        assert topic_filter[:1] not in ("#", "+"), topic_filter
    for topic_filter in rules.local_filters():
        assert topic_filter.startswith(f"{cloud}/"), topic_filter


def test_only_aws_has_rules_that_can_echo() -> None:
    assert [c for c in ("c8y", "az", "aws") if shipped(c).may_echo] == ["aws"]


def test_the_device_id_is_the_bound_one() -> None:
    rules = TopicRules.load(PACKAGED / "az.toml", device_id="gw-7")
    assert rules.to_remote("az/messages/events/x") == "devices/gw-7/messages/events/x"
    assert rules.to_local(f"devices/{DEVICE}/messages/devicebound/x") is None

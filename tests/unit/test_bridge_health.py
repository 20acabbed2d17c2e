"""The health message says why the cloud is down: the cause, our error's class and its fix."""

from __future__ import annotations

import json
from typing import Any

from edgeagent import errors
from edgeagent.bridge.bridge import Bridge
from edgeagent.bridge.health import Health, down, reported_error
from edgeagent.bridge.rule import BridgeRule
from edgeagent.bridge.rules import TopicRules
from edgeagent.mqtt import packets as p
from edgeagent.mqtt.endpoint import Endpoint
from tests.support.fake_socket import FakeSocket

RULES = TopicRules([BridgeRule("out", "c8y/", "", "s/us")])
TOPIC = "agent/bridge/c8y/health"


class _Finished:
    done = True

    def __init__(self, outcome: object) -> None:
        self.outcome = outcome


def _health_published(sock: FakeSocket) -> list[dict[str, Any]]:
    out = []
    for kind, flags, body in sock.packets():
        if kind == p.PUBLISH:
            message = p.parse_publish(flags, body)
            if message.topic == TOPIC:
                out.append(json.loads(message.payload))
    return out


def test_a_signer_that_is_down_is_the_reason_with_its_class_and_fix() -> None:
    local = Endpoint("local", "127.0.0.1", 1, "bridge")
    cloud = Endpoint("c8y", "127.0.0.1", 2, "device-001")
    bridge = Bridge(local, cloud, RULES, TOPIC)
    local_sock = FakeSocket()
    bridge.local.resume(local_sock, present=False)
    side = bridge._cloud_side
    failure = errors.SignerUnreachable(
        "the signing service at /run/agent-p11-server/agent-p11-server.sock is not running "
        "(connection refused)",
        "start it: systemctl start agent-p11-server (or run `agent p11-server`)",
    )
    side.connecting = _Finished(failure)  # type: ignore[assignment]
    bridge._connected(side, None)  # type: ignore[arg-type]
    bridge.local.flush()

    [health] = _health_published(local_sock)
    assert health["status"] == "down"
    assert health["reason"] == failure.cause  # the cause alone: no "fix:" glued to it
    assert health["error"] == "SignerUnreachable"
    assert health["fix"] == failure.fix


def test_connect_reads_the_same_error_back() -> None:
    refused = errors.DeviceCertificateRefused("the cloud refused the device", "register it")
    back = reported_error(Health.from_json(down("ignored", refused).to_json()))  # type: ignore[arg-type]
    assert type(back) is errors.DeviceCertificateRefused
    assert (back.cause, back.fix) == ("the cloud refused the device", "register it")
    # A class with its own __init__ comes back too, with the reported cause.
    odd = Health("down", 0.0, "agent.toml:1:2: not valid TOML", "ConfigSyntaxError", "edit it")
    syntax = reported_error(odd)
    assert type(syntax) is errors.ConfigSyntaxError and syntax.cause.startswith("agent.toml")


def test_what_is_not_one_of_our_errors_is_no_error() -> None:
    assert reported_error(down("connection lost: reset")) is None
    assert reported_error(Health("down", 0.0, "x", "Exception", "")) is None
    assert reported_error(Health("down", 0.0, "x", "BaseException", "")) is None
    assert reported_error(Health("up", 0.0)) is None
    assert Health.from_json(b"not json") is None
    assert Health.from_json(b'{"status": "sideways"}') is None

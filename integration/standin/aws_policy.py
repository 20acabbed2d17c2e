"""A stand-in AWS IoT policy: what each thing may publish and receive, as a mosquitto ACL.

    policy = AwsPolicy(directory / "aws.acl", apps=["cloud-app"])
    broker = Mosquitto(..., extra_config=policy.config_lines())   # before it starts
    policy.set_silent(True, broker.pid)   # the thing may no longer receive its test topic

AWS IoT Core answers `agent connect aws`'s check by itself: the device
publishes on ``thinedge/devices/<thing>/test-connection`` while subscribed
to it, and the broker hands the message back. mosquitto does the same, so
the stand-in needs no responder. What makes a real AWS account "not answer"
is a policy that does not allow the thing to receive that topic (or a thing
that does not exist yet): the SUBSCRIBE is accepted, the message is never
delivered. ``silent`` writes exactly that policy.

The policy is thin-edge's documented one: a thing (MQTT client id = thing
name, mosquitto's ``%c``) may use ``thinedge/<thing>/#``, its shadow
``$aws/things/<thing>/shadow/#`` and its test-connection topic. ``apps``
(certificate CNs: the broker uses them as user names) may use every topic:
they play the cloud side in tests and demos. Nobody else may do anything.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

TEST_CONNECTION = "thinedge/devices/%c/test-connection"


class AwsPolicy:
    def __init__(self, path: Path, *, apps: Sequence[str] = (), silent: bool = False) -> None:
        self.path = path
        self.apps = tuple(apps)
        self.silent = silent
        self.write()

    def config_lines(self) -> list[str]:
        """What the broker's configuration needs to enforce this policy."""
        return [f"acl_file {self.path}"]

    def text(self) -> str:
        lines = [
            "# Stand-in AWS IoT policy (integration/standin/aws_policy.py).",
            "# %c: the MQTT client id, which AWS requires to be the thing name.",
            "pattern readwrite thinedge/%c/#",
            "pattern readwrite $aws/things/%c/shadow/#",
            f"pattern write {TEST_CONNECTION}",
        ]
        if not self.silent:
            lines.append(f"pattern read {TEST_CONNECTION}")
        for app in self.apps:
            lines += ["", f"user {app}", "topic readwrite #", "topic readwrite $aws/#"]
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        self.path.write_text(self.text())

    def set_silent(self, silent: bool, broker_pid: int | None) -> None:
        """Rewrite the policy; a running broker re-reads it on SIGHUP ("Reloading config.")."""
        self.silent = silent
        self.write()
        if broker_pid is not None:
            os.kill(broker_pid, signal.SIGHUP)

"""`agent status`: what each cloud's bridge is doing, told by the bridge itself (its status file).

Real parts: a SoftHSM2 token, a local mosquitto and a stand-in cloud
(mosquitto, TLS 1.3, client certificates required); real messages through
the bridge move its counters; stopping the cloud broker takes the cloud link
down; `agent disconnect` and a killed bridge leave a status file that is history.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from edgeagent import errors
from tests.support.agent_cli import AGENT, exit_code
from tests.support.clouds import AwsStandin, AzStandin
from tests.support.gateway import Gateway, GatewayFactory, process_alive
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

# `gateway` (tests/support/gateway.py): module mode on `softhsm_token`, no key yet.


def status_json(gateway: Gateway, *args: str) -> tuple[int, dict[str, Any]]:
    done = gateway.agent("status", *args, "--json")
    assert (done.stderr == "") == (done.returncode == 0), done.stderr
    return done.returncode, json.loads(done.stdout)


def c8y_of(report: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in report["clouds"] if c["cloud"] == "c8y"]
    return found[0]


def wait_for_status(
    gateway: Gateway, until: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> tuple[int, dict[str, Any]]:
    """`agent status --json` until ``until(c8y's entry)`` holds; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        code, report = status_json(gateway)
        if until(c8y_of(report)) or time.monotonic() > deadline:
            return code, report
        time.sleep(0.5)


def connected(gateway: Gateway, token: SoftHsmToken) -> None:
    gateway.new_device_key(token)
    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr


def test_status_while_up_counts_real_traffic(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    connected(gateway, softhsm_token)
    code, report = wait_for_status(gateway, lambda c: c["up"])
    assert code == 0, report
    before = c8y_of(report)
    assert report["schema"] == 1 and report["up"] is True
    assert before["configured"] is True and before["problem"] is None
    bridge = before["bridge"]
    assert bridge["running"] is True and bridge["pid"] == gateway.bridge_pid()
    assert bridge["managed_by"] == "pid file"
    assert bridge["pid_file"] == str(gateway.run_dir / "bridge-c8y.pid")
    assert bridge["since"] is not None and bridge["last_ran_until"] is None
    assert before["cloud_link"]["up"] is True and before["cloud_link"]["tls_version"] == "TLS 1.3"
    assert before["local_link"]["up"] is True
    assert before["device_id"] == "device-001"
    assert before["key_uri"].startswith("pkcs11:") and "object=device-key" in before["key_uri"]
    others = [c for c in report["clouds"] if c["cloud"] != "c8y"]
    assert [c["configured"] for c in others] == [False, False]

    for n in range(3):
        gateway.exchange(b"200,c8y_Temperature,T,%d" % n, b"510,device-001")

    def moved(c8y: dict[str, Any]) -> bool:
        # In flight: a sample may catch the last message before its ack; the next one not.
        return bool(
            c8y["forwarded"]["to_cloud"] >= before["forwarded"]["to_cloud"] + 3
            and c8y["forwarded"]["to_local"] >= before["forwarded"]["to_local"] + 3
            and c8y["in_flight"] == {"to_cloud": 0, "to_local": 0}
        )

    code, report = wait_for_status(gateway, moved)
    after = c8y_of(report)
    assert moved(after), (before, after)
    assert code == 0
    assert after["dropped"] == {"oversize": 0, "no_rule": 0, "qos0_link_down": 0}

    human = gateway.agent("status", "c8y")
    assert human.returncode == 0, human.stdout + human.stderr
    assert "c8y (Cumulocity): up" in human.stdout
    assert f"bridge: running, pid {gateway.bridge_pid()} since " in human.stdout
    assert "cloud link: up since " in human.stdout and ", TLS 1.3" in human.stdout
    assert "forwarded: " in human.stdout and "key: pkcs11:" in human.stdout
    # The key URI, never the PIN.
    status_file = (gateway.run_dir / "status-c8y.json").read_text()
    assert softhsm_token.pin not in status_file
    assert oct((gateway.run_dir / "status-c8y.json").stat().st_mode & 0o777) == "0o644"


def test_the_cloud_broker_stopped_is_a_link_down_with_its_error(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    connected(gateway, softhsm_token)
    gateway.cloud.stop()
    code, report = wait_for_status(gateway, lambda c: not c["cloud_link"]["up"])
    c8y = c8y_of(report)
    assert code == exit_code(errors.BridgeLinkDown), report
    assert report["up"] is False and c8y["up"] is False
    assert c8y["bridge"]["running"] is True
    assert c8y["local_link"]["up"] is True
    link = c8y["cloud_link"]
    assert link["last_error"] and link["last_error_at"] and link["since"]
    assert "the Cumulocity link is down" in c8y["problem"]

    human = gateway.agent("status")
    assert human.returncode == exit_code(errors.BridgeLinkDown)
    assert "c8y (Cumulocity): DOWN" in human.stdout
    assert "cloud link: down since " in human.stdout and "last error at " in human.stdout
    assert "fix: agent doctor c8y" in human.stderr
    assert "\n  fix:" not in human.stdout  # the bridge's error on one line

    gateway.cloud.start()
    code, report = wait_for_status(gateway, lambda c: c["up"], timeout=60)
    assert code == 0, report
    assert c8y_of(report)["cloud_link"]["last_error"] == link["last_error"]  # kept: history


def test_after_disconnect_the_status_file_is_history(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    connected(gateway, softhsm_token)
    wait_for_status(gateway, lambda c: c["up"])
    assert gateway.agent("disconnect", "c8y").returncode == 0

    code, report = status_json(gateway, "c8y")
    c8y = c8y_of(report)
    assert code == exit_code(errors.BridgeNotRunning)
    assert [c["cloud"] for c in report["clouds"]] == ["c8y"]
    assert c8y["bridge"]["running"] is False and c8y["bridge"]["pid"] is None
    assert c8y["bridge"]["stopped_at"] is not None
    assert c8y["bridge"]["last_ran_until"] == c8y["bridge"]["stopped_at"]
    assert c8y["cloud_link"]["up"] is False and c8y["local_link"]["up"] is False

    human = gateway.agent("status", "c8y")
    assert human.returncode == exit_code(errors.BridgeNotRunning)
    assert "bridge: not running (last ran until " in human.stdout
    assert ", stopped)" in human.stdout
    assert "fix: agent connect c8y" in human.stderr


def test_a_killed_bridge_leaves_a_stale_status_file(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    connected(gateway, softhsm_token)
    wait_for_status(gateway, lambda c: c["up"])
    pid = gateway.bridge_pid()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)

    human = gateway.agent("status")
    assert human.returncode == exit_code(errors.BridgeNotRunning), human.stdout
    assert "bridge: not running (last ran until " in human.stdout
    assert "ended without stopping" in human.stdout
    assert "last cloud link: up" in human.stdout  # what it last said, marked as such


def test_no_cloud_configured_says_so(gateway: Gateway) -> None:
    gateway.agent("config", "unset", "c8y.url")
    done = gateway.agent("status")
    assert done.returncode == exit_code(errors.MissingConfigValue), done.stdout + done.stderr
    assert "c8y (Cumulocity): not configured (c8y.url is not set)" in done.stdout
    assert "error: no cloud is configured" in done.stderr

    code, report = status_json(gateway)
    assert code == exit_code(errors.MissingConfigValue)
    assert report["up"] is False
    assert [c["configured"] for c in report["clouds"]] == [False, False, False]
    titles = ["Cumulocity", "Azure IoT Hub", "AWS IoT Core"]
    assert [c["title"] for c in report["clouds"]] == titles  # named alike, configured or not


def test_a_configured_cloud_never_connected_is_not_running(gateway: Gateway) -> None:
    code, report = status_json(gateway)
    assert code == exit_code(errors.BridgeNotRunning)
    c8y = c8y_of(report)
    assert c8y["configured"] is True and c8y["bridge"]["running"] is False
    assert c8y["cloud_link"] is None and c8y["forwarded"] is None
    human = gateway.agent("status", "c8y")
    assert "bridge: not running (never started here)" in human.stdout


def test_three_clouds_each_report_their_own_bridge(
    gateway_factory: GatewayFactory, az_hub: AzStandin, aws_core: AwsStandin
) -> None:
    gw = gateway_factory("off", cn="device-001")
    az_hub.attach(gw)
    aws_core.attach(gw)
    for cloud in ("c8y", "az", "aws"):
        done = gw.agent("connect", cloud)
        assert done.returncode == 0, done.stdout + done.stderr

    def all_up(report: dict[str, Any]) -> bool:
        return all(c["up"] for c in report["clouds"])

    deadline = time.monotonic() + 30
    code, report = status_json(gw)
    while not all_up(report) and time.monotonic() < deadline:
        time.sleep(0.5)
        code, report = status_json(gw)
    assert code == 0, report
    by_cloud = {c["cloud"]: c for c in report["clouds"]}
    assert {name: c["bridge"]["pid"] for name, c in by_cloud.items()} == {
        name: gw.bridge_pid(name) for name in ("c8y", "az", "aws")
    }
    assert by_cloud["az"]["title"] == "Azure IoT Hub"

    assert gw.agent("disconnect", "az").returncode == 0
    code, report = status_json(gw)
    by_cloud = {c["cloud"]: c for c in report["clouds"]}
    assert code == exit_code(errors.BridgeNotRunning)
    assert [by_cloud[c]["up"] for c in ("c8y", "az", "aws")] == [True, False, True]
    assert "the Azure IoT Hub bridge is not running" in by_cloud["az"]["problem"]


def test_a_bridge_that_runs_for_an_unconfigured_cloud_is_shown(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    connected(gateway, softhsm_token)
    url = gateway.agent("config", "get", "c8y.url").stdout.strip()
    gateway.agent("config", "unset", "c8y.url")
    try:
        done = gateway.agent("status")
        assert done.returncode == exit_code(errors.MissingConfigValue), done.stdout + done.stderr
        assert "c8y (Cumulocity): not configured (c8y.url is not set)" in done.stdout
        assert "(but a bridge for it runs: `agent disconnect` stops it)" in done.stdout
        assert f"bridge: running, pid {gateway.bridge_pid()}" in done.stdout
    finally:
        gateway.set("c8y.url", url)  # so that the fixture's `agent disconnect c8y` works


def test_a_foreground_bridge_without_the_default_pid_file_is_running(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    """A container's entry point: `agent bridge run c8y` holding a pid file of its own
    (not run.path/bridge-c8y.pid), no systemd: its status file names it."""
    gateway.new_device_key(softhsm_token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env["AGENT_CONFIG_DIR"] = str(gateway.config_dir)
    own = gateway.run_dir.parent / "entrypoint.pid"
    bridge = subprocess.Popen(
        [str(AGENT), "bridge", "run", "c8y", "--pid-file", str(own)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        code, report = wait_for_status(gateway, lambda c: c["up"])
        c8y = c8y_of(report)
        assert code == 0, report
        assert c8y["bridge"]["managed_by"] == "foreground"
        assert c8y["bridge"]["pid"] == bridge.pid  # the runtime exec'd in place: same pid
        assert c8y["bridge"]["pid_file"] is None
    finally:
        bridge.terminate()
        bridge.wait(20)
    code, report = status_json(gateway)
    assert code == exit_code(errors.BridgeNotRunning)
    assert c8y_of(report)["bridge"]["stopped_at"] is not None

"""The bridge host: one process, a thread per cloud, a control socket (issue 11 part 6),
one bridge per cloud (issue 12 part 2), this start's error (issue 12 part 6).

Real parts: SoftHSM2 tokens, mosquitto brokers, the real `agent` command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.bridge.service import BridgeService
from tests.support.agent_cli import AGENT, exit_code
from tests.support.clouds import AzStandin
from tests.support.gateway import Gateway, issue_device_cert, process_alive
from tests.support.softhsm import SoftHsm, SoftHsmToken

pytestmark = pytest.mark.integration

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.fixture
def connected(gateway: Gateway, softhsm_token: SoftHsmToken) -> Gateway:
    """c8y connected in module mode: the bridge host runs with one cloud."""
    gateway.new_device_key(softhsm_token)
    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    return gateway


def _host_pid(gw: Gateway) -> int:
    return int((gw.run_dir / "bridge-host.pid").read_text())


def _request(gw: Gateway, raw: bytes) -> bytes:
    """Send ``raw`` on the control socket as it is; what comes back before the close."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(gw.run_dir / "bridge.sock"))
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _names_pid(gw: Gateway, cloud: str, pid: int) -> bool:
    try:
        return gw.bridge_pid(cloud) == pid
    except (FileNotFoundError, ValueError):
        return False


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _reply(data: bytes) -> dict[str, object]:
    (length,) = struct.unpack(">I", data[:4])
    reply: dict[str, object] = json.loads(data[4 : 4 + length])
    return reply


# -- issue 12 part 2: one bridge per cloud ------------------------------------------------


def test_a_foreground_bridge_for_a_connected_cloud_is_refused(connected: Gateway) -> None:
    gw = connected
    host = _host_pid(gw)
    done = gw.agent("bridge", "run", "c8y", timeout=60)
    assert done.returncode == exit_code(errors.BridgeAlreadyRunning), done.stderr
    assert f"the c8y bridge is already running (pid {host}, in the bridge host" in done.stderr
    assert "agent disconnect c8y" in done.stderr
    # The connected bridge's traffic is untouched, and its session was never taken.
    up, down = gw.exchange(b"200,after-refusal", b"510,after-refusal")
    assert (up.payload, down.payload) == (b"200,after-refusal", b"510,after-refusal")
    assert gw.bridge_pid("c8y") == host
    # One CONNECT as the device: the bridge's (connect's check stops before MQTT).
    assert gw.cloud.log_text().count("as device-001") == 1


def test_connect_while_a_foreground_bridge_runs_is_refused(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gw = gateway
    gw.new_device_key(softhsm_token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env["AGENT_CONFIG_DIR"] = str(gw.config_dir)
    foreground = subprocess.Popen(
        [str(AGENT), "bridge", "run", "c8y"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (gw.run_dir / "bridge-c8y.pid").exists():
            assert foreground.poll() is None, foreground.stderr
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert gw.bridge_pid("c8y") == foreground.pid
        done = gw.agent("connect", "c8y")
        assert done.returncode == exit_code(errors.BridgeAlreadyRunning), done.stderr
        assert (
            f"already connected to Cumulocity: the bridge is running (pid {foreground.pid}, "
            "a foreground `agent bridge run`)" in done.stdout + done.stderr
        )
        # A second foreground one is refused too, naming the first and how it runs.
        second = gw.agent("bridge", "run", "c8y", timeout=60)
        assert second.returncode == exit_code(errors.BridgeAlreadyRunning)
        assert f"(pid {foreground.pid}, a foreground `agent bridge run`)" in second.stderr
        up, _ = gw.exchange(b"200,foreground", b"510,foreground")
        assert up.payload == b"200,foreground"
    finally:
        foreground.send_signal(signal.SIGTERM)
        foreground.wait(30)
    assert not (gw.run_dir / "bridge-c8y.pid").exists()


# -- the host: one cloud failing, a killed host -------------------------------------------


def test_one_cloud_failing_never_stops_the_others(
    gateway: Gateway, az_hub: AzStandin, softhsm: SoftHsm, softhsm_token: SoftHsmToken
) -> None:
    gw = gateway
    # aws: its key on another token, with a PIN that token refuses. (Made before
    # the host starts: SoftHSM2 shows a process only the tokens it had at start.)
    other = softhsm.create_token()
    key = other.generate_key("ec-p256", label="aws-key")
    gw.new_device_key(softhsm_token)
    assert gw.agent("connect", "c8y").returncode == 0
    host = _host_pid(gw)
    az_hub.attach(gw)
    assert gw.agent("connect", "az").returncode == 0

    gw.set("aws.url", "localhost:1")  # never reached: the key fails first
    gw.set("aws.root_cert_path", str(gw.pki.ca.cert_path))
    gw.set("aws.device.key_uri", key.uri)
    gw.set("aws.device.cert_path", str(issue_device_cert(gw, key)))
    gw.set("aws.device.key_pin", "999999")
    log = gw.root / "log" / "bridge-aws.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("2026-01-01T00:00:00.000Z ERROR aws: an error of an earlier run\n")
    config = gw.config_dir
    service = BridgeService("aws", config, gw.run_dir, gw.root / "log")
    with pytest.raises(errors.PinIncorrect) as caught:
        service.start()  # the host's answer, as our own error class
    assert "aws.device.key_pin" in str(caught.value)
    assert "earlier run" not in str(caught.value)
    done = gw.agent("bridge", "run", "aws", "--host")
    assert done.returncode == exit_code(errors.PinIncorrect), done.stdout + done.stderr
    assert not (gw.run_dir / "bridge-aws.pid").exists()
    # az's cloud goes away: its thread retries, c8y forwards on.
    az_hub.broker.stop()
    up, down = gw.exchange(b"200,still-here", b"510,still-here")
    assert (up.payload, down.payload) == (b"200,still-here", b"510,still-here")
    assert _host_pid(gw) == host and gw.bridge_pid("az") == host
    az_hub.broker.start()
    with az_hub.app() as app, gw.local_client() as local:
        app.subscribe("devices/device-001/messages/events/#", qos=1)
        deadline = time.monotonic() + 60
        while not app.messages and time.monotonic() < deadline:
            local.publish("az/messages/events/t", b"az-back", qos=1)
            time.sleep(1)
        assert app.messages, "the az bridge did not come back"


def test_a_killed_host_loses_no_qos1_message_and_the_next_connect_works(
    connected: Gateway,
) -> None:
    gw = connected
    host = _host_pid(gw)
    with gw.cloud_app() as cloud:
        cloud.subscribe("s/us", qos=1)
        with gw.local_client() as local:
            local.publish("c8y/s/us", b"before-kill", qos=1)
            cloud.wait_for(1, "s/us", timeout=15)
            os.kill(host, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while process_alive(host):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # Stale now: the socket and the pid files are there, their locks free.
            assert (gw.run_dir / "bridge.sock").exists()
            assert (gw.run_dir / "bridge-host.pid").exists()
            # The local broker keeps these for the bridge's persistent session.
            for i in range(50):
                local.publish("c8y/s/us", b"while-dead,%02d" % i, qos=1)
        done = gw.agent("connect", "c8y")
        assert done.returncode == 0, done.stdout + done.stderr
        assert _host_pid(gw) != host and gw.bridge_pid("c8y") == _host_pid(gw)
        wanted = {b"while-dead,%02d" % i for i in range(50)}
        deadline = time.monotonic() + 30
        while not wanted <= {m.payload for m in cloud.messages} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert wanted - {m.payload for m in cloud.messages} == set()


# -- the control socket -------------------------------------------------------------------


def test_a_malformed_or_oversized_frame_never_takes_the_host_down(connected: Gateway) -> None:
    gw = connected
    host = _host_pid(gw)
    oversized = _reply(_request(gw, struct.pack(">I", 0xFFFFFFFF) + b"x" * 10))
    assert oversized["ok"] is False and "frame length" in str(oversized["message"])
    not_json = _reply(_request(gw, _frame(b"{not json")))
    assert not_json["ok"] is False and "bad control request" in str(not_json["message"])
    unknown = _reply(_request(gw, _frame(b'{"op": "format-disk"}')))
    assert unknown["ok"] is False and "unknown op" in str(unknown["message"])
    bad_plan = _reply(_request(gw, _frame(b'{"op": "start", "plan": {"cloud": 1}}')))
    assert bad_plan["ok"] is False
    half = _reply(_request(gw, b"\x00\x00"))  # half a header, then the end
    assert half["ok"] is False and "middle of a frame" in str(half["message"])
    listing = _reply(_request(gw, _frame(b'{"op": "list"}')))
    assert listing["ok"] is True and listing["pid"] == host
    clouds = listing["clouds"]
    assert isinstance(clouds, dict) and list(clouds) == ["c8y"]
    assert clouds["c8y"]["running"] is True
    up, _ = gw.exchange(b"200,after-garbage", b"510,after-garbage")
    assert up.payload == b"200,after-garbage"


@pytest.fixture
def searchable_run_dir(gateway: Gateway) -> Iterator[Path]:
    """run.path in a directory ``nobody`` can reach (pytest's tmp_path is root's only)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.fail("the peer check is tested as root with setpriv (util-linux)")
    with tempfile.TemporaryDirectory(prefix="edgeagent-host-") as name:
        base = Path(name)
        base.chmod(0o755)
        run = base / "run"
        gateway.set("run.path", str(run))
        try:
            yield run
        finally:
            gateway.agent("disconnect", "c8y")


def test_the_control_socket_refuses_a_peer_of_another_uid(
    gateway: Gateway, softhsm_token: SoftHsmToken, searchable_run_dir: Path
) -> None:
    gw = gateway
    gw.new_device_key(softhsm_token)
    assert gw.agent("connect", "c8y").returncode == 0
    sock_path = searchable_run_dir / "bridge.sock"
    assert sock_path.stat().st_mode & 0o777 == 0o600
    # A careless chmod opens the file mode and the directory: the uid check still holds.
    searchable_run_dir.chmod(0o755)
    sock_path.chmod(0o666)
    probe = (
        "import socket, struct, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(sock_path)!r})\n"
        'body = b\'{"op": "stop", "cloud": "c8y"}\'\n'
        "s.sendall(struct.pack('>I', len(body)) + body)\n"
        "data = b''\n"
        "while chunk := s.recv(65536):\n"
        "    data += chunk\n"
        "print(data[4:].decode())\n"
    )
    done = subprocess.run(
        [*AS_NOBODY, "/usr/bin/python3", "-c", probe],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Refused with a reason (L2), not a silent close the client took for an exiting host.
    reply = json.loads(done.stdout)
    assert reply["ok"] is False and reply["error"] == "ServiceError", reply
    assert reply["message"] == f"uid {NOBODY} may not use the bridge host", reply
    assert reply["fix"] == f"run as uid {os.getuid()} or root", reply
    host_log = (gw.root / "log" / "bridge-host.log").read_text()
    assert re.search(rf"refused a control connection from pid \d+ of uid {NOBODY}", host_log)
    host = (searchable_run_dir / "bridge-host.pid").read_text()
    assert (searchable_run_dir / "bridge-c8y.pid").read_text() == host  # not stopped
    up, _ = gw.exchange(b"200,after-stranger", b"510,after-stranger")
    assert up.payload == b"200,after-stranger"


# -- issue 12 part 6: the log ---------------------------------------------------------------

_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \w+: "
)


def test_every_log_line_has_a_time_a_level_and_the_cloud(connected: Gateway) -> None:
    gw = connected
    gw.exchange(b"200,log", b"510,log")
    text = (gw.root / "log" / "bridge-c8y.log").read_text()
    lines = text.splitlines()
    assert lines and all(_LINE.match(line) for line in lines), text
    assert all(" c8y: " in line for line in lines), text
    starting = [line for line in lines if "bridge for Cumulocity starting" in line]
    assert len(starting) == 1 and " INFO c8y: " in starting[0]
    assert not [line for line in lines if " WARNING " in line], text  # a normal start


# -- `agent bridge host`: what agent-bridge.service runs -------------------------------------


def test_bridge_host_in_the_foreground_brings_up_the_connected_clouds(
    gateway: Gateway, az_hub: AzStandin, softhsm: SoftHsm, softhsm_token: SoftHsmToken
) -> None:
    gw = gateway
    other = softhsm.create_token()
    key = other.generate_key("ec-p256", label="aws-key")
    gw.new_device_key(softhsm_token)
    az_hub.attach(gw)
    for cloud in ("c8y", "az"):
        done = gw.agent("connect", cloud)
        assert done.returncode == 0, done.stdout + done.stderr
    connected = gw.config_dir / "connected-clouds"
    assert connected.read_text() == "az\nc8y\n"
    # aws was connected once, and its PIN has changed since: it must not stop the others.
    gw.set("aws.url", "localhost:1")
    gw.set("aws.root_cert_path", str(gw.pki.ca.cert_path))
    gw.set("aws.device.key_uri", key.uri)
    gw.set("aws.device.cert_path", str(issue_device_cert(gw, key)))
    gw.set("aws.device.key_pin", "999999")
    connected.write_text("aws\naz\nc8y\n")
    # A reboot: the detached host is gone, the run directory's files are stale.
    detached = _host_pid(gw)
    os.kill(detached, signal.SIGKILL)
    while process_alive(detached):
        time.sleep(0.05)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env["AGENT_CONFIG_DIR"] = str(gw.config_dir)
    journal = gw.root / "journal.txt"
    with journal.open("wb") as out:
        command = [str(AGENT), "bridge", "host"]
        host = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while not all(_names_pid(gw, c, host.pid) for c in ("c8y", "az")):
            assert host.poll() is None, journal.read_text()
            assert time.monotonic() < deadline, journal.read_text()
            time.sleep(0.05)
        assert gw.bridge_pid("c8y") == gw.bridge_pid("az") == host.pid == _host_pid(gw)
        up, down = gw.exchange(b"200,after-reboot", b"510,after-reboot")
        assert (up.payload, down.payload) == (b"200,after-reboot", b"510,after-reboot")
        assert not (gw.run_dir / "bridge-aws.pid").exists()
        text = journal.read_text()
        assert re.search(r"ERROR aws: the aws bridge stopped: .*PIN", text), text
        # One host: a second one is refused, naming the first.
        second = gw.agent("bridge", "host", timeout=60)
        assert second.returncode == exit_code(errors.BridgeAlreadyRunning), second.stderr
        assert f"the bridge host is already running (pid {host.pid}" in second.stderr
        # disconnect stops one cloud in it; the last one ends the host, exit 0.
        assert gw.agent("disconnect", "az").returncode == 0
        assert host.poll() is None and gw.bridge_pid("c8y") == host.pid
        assert gw.agent("disconnect", "c8y").returncode == 0
        assert host.wait(30) == 0, journal.read_text()
    finally:
        if host.poll() is None:
            host.send_signal(signal.SIGTERM)
            host.wait(30)
    assert connected.read_text() == "aws\n"


def test_a_start_that_fails_before_the_host_says_this_start_s_error(gateway: Gateway) -> None:
    gw = gateway
    log = gw.root / "log" / "bridge-c8y.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("2026-01-01T00:00:00.000Z ERROR c8y: an error of an earlier run\n")
    gw.set("device.cryptoki.mode", "off")
    gw.set("device.key_path", str(gw.root / "missing.key"))
    gw.set("device.cert_path", str(gw.root / "missing.pem"))
    service = BridgeService("c8y", gw.config_dir, gw.run_dir, gw.root / "log")
    with pytest.raises(errors.ServiceError) as caught:
        service.start()
    message = str(caught.value)
    assert "the bridge could not start: " in message and "missing.pem" in message, message
    assert "earlier run" not in message
    assert not message.startswith("the bridge could not start: error:")
    assert "an error of an earlier run" not in service.log_tail()
    assert not (gw.run_dir / "bridge-c8y.pid").exists()


def test_bridge_host_fails_when_no_connected_cloud_can_start(gateway: Gateway) -> None:
    """M4: a missing certificate at boot is a failed unit, not "inactive (dead)" with 0."""
    gw = gateway
    gw.set("device.cryptoki.mode", "off")
    gw.set("device.key_path", str(gw.root / "missing.key"))
    gw.set("device.cert_path", str(gw.root / "missing.pem"))
    (gw.config_dir / "connected-clouds").write_text("c8y\n")
    done = gw.agent("bridge", "host", timeout=60)
    assert "c8y not started" in done.stderr and "missing.pem" in done.stderr, done.stderr
    assert done.returncode not in (0, None), done.stderr
    assert not (gw.run_dir / "bridge-host.pid").exists()

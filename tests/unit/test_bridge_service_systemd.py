"""BridgeService under systemd (faked: no systemd in CI), against a stand-in bridge host.

The stand-in is a real process holding real pid file locks and serving the
real control protocol; only `systemctl` is faked, and it reports the unit
active exactly while the stand-in process lives.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgeagent import errors
from edgeagent.bridge import connected, control
from edgeagent.bridge.service import BridgeService

# Holds bridge-host.pid and bridge-c8y.pid; on {"op": "stop"} releases the
# cloud's, answers, and then (its last cloud gone) exits like the real host:
# pid file and socket released first, the process itself EXIT_DELAY later.
STAND_IN_HOST = textwrap.dedent(
    """
    import contextlib, json, socket, sys, time
    from pathlib import Path
    from edgeagent.bridge.pidfile import hold_pid_file
    from edgeagent.protocol.frame import FrameStream, PeerClosed

    run_dir, exit_delay, clouds = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    with contextlib.ExitStack() as host:
        host.enter_context(hold_pid_file(run_dir / "bridge-host.pid"))
        cloud = contextlib.ExitStack()
        for name in clouds:
            cloud.enter_context(hold_pid_file(run_dir / f"bridge-{name}.pid"))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(run_dir / "bridge.sock"))
        listener.listen(4)
        print("ready", flush=True)
        running = True
        while running:
            conn, _ = listener.accept()
            with conn:
                stream = FrameStream(conn, idle_timeout=5, frame_timeout=5)
                try:
                    request = json.loads(stream.read())
                except PeerClosed:
                    continue
                if request["op"] == "stop":
                    cloud.close()
                    running = False
                state = {name: {"running": running, "since": 0} for name in clouds}
                stream.write(json.dumps({"ok": True, "pid": 1, "clouds": state}).encode())
        (run_dir / "bridge.sock").unlink()
        listener.close()
    time.sleep(exit_delay)  # interpreter teardown, the PKCS#11 module's finalizer
    """
)


@dataclass(frozen=True)
class SystemdService(BridgeService):
    @property
    def manager(self) -> str:  # type: ignore[override]
        return "systemd"


@contextlib.contextmanager
def stand_in_host(run_dir: Path, *clouds: str) -> Iterator[subprocess.Popen[str]]:
    run_dir.mkdir(mode=0o700, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", STAND_IN_HOST, str(run_dir), "1.5", *clouds],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    with stand_in_host(tmp_path / "run", "c8y") as process:
        yield process


def test_stopping_the_host_s_last_cloud_returns_once_the_host_is_gone(
    tmp_path: Path, host: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """H1: else a reconnect's start finds a host on its way out, and starts nothing."""
    asked: list[list[str]] = []

    def systemctl(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        asked.append(args)
        inactive = args[1] == "is-active" and host.poll() is not None
        return subprocess.CompletedProcess(args, 3 if inactive else 0, stdout="", stderr="")

    monkeypatch.setattr("edgeagent.bridge.service.subprocess.run", systemctl)
    connected.add(tmp_path, "c8y")
    service = SystemdService("c8y", tmp_path, tmp_path / "run", tmp_path / "log")
    assert service.running_pid() == host.pid
    assert service.stop()
    assert host.poll() is not None, "stop returned while the host process still ran"
    assert ["systemctl", "disable", "agent-bridge.service"] in asked
    assert service.host_pid() is None


def test_a_failed_start_forgets_the_cloud_only_when_this_start_added_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """H1: a reconnect whose start fails keeps the cloud for the next boot."""
    (tmp_path / "run").mkdir(mode=0o700)

    def systemctl(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        failed = args[1] == "enable"
        return subprocess.CompletedProcess(args, 1 if failed else 3, stdout="", stderr="no")

    monkeypatch.setattr("edgeagent.bridge.service.subprocess.run", systemctl)
    service = SystemdService("c8y", tmp_path, tmp_path / "run", tmp_path / "log")
    connected.add(tmp_path, "c8y")
    with pytest.raises(Exception, match="systemctl enable --now"):
        service.start()
    assert connected.names(tmp_path) == ["c8y"]

    connected.remove(tmp_path, "c8y")
    with pytest.raises(Exception, match="systemctl enable --now"):
        service.start()
    assert connected.names(tmp_path) == []


@dataclass(frozen=True)
class AskingService(SystemdService):
    """Records the start requests it would send to the host (`agent bridge run --host`)."""

    asked: list[str] = field(default_factory=list)

    def _start_in_host(self, *, restart: bool = False) -> str:
        self.asked.append(f"restart {self.cloud}" if restart else self.cloud)
        return "in the host"


def test_a_host_that_never_read_this_cloud_is_asked_to_start_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M2: the unit's host read connected-clouds before this cloud was added to it."""
    monkeypatch.setattr("edgeagent.bridge.timeouts.RUN_START", 3.0)
    monkeypatch.setattr(
        "edgeagent.bridge.service.subprocess.run",
        lambda args, **_: subprocess.CompletedProcess(args, 0, stdout="", stderr=""),
    )
    service = AskingService("az", tmp_path, tmp_path / "run", tmp_path / "log")
    with stand_in_host(tmp_path / "run", "c8y"):
        assert service._start_unit() == "in the host"
    assert service.asked == ["az"]


def test_a_symlinked_system_config_dir_is_still_systemd_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """L5: /etc/agent -> /data/agent made a root connect start a detached host instead."""
    (tmp_path / "data-agent").mkdir()
    etc_agent = tmp_path / "etc-agent"
    etc_agent.symlink_to(tmp_path / "data-agent")
    monkeypatch.setattr("edgeagent.config.locations.SYSTEM_CONFIG_DIR", etc_agent)
    monkeypatch.setattr("edgeagent.bridge.service.systemd_is_running", lambda: True)
    monkeypatch.setattr(
        "edgeagent.bridge.service.subprocess.run",
        lambda args, **_: subprocess.CompletedProcess(args, 0, stdout="", stderr=""),
    )
    assert BridgeService("c8y", etc_agent, tmp_path, tmp_path).manager == "systemd"
    assert BridgeService("c8y", tmp_path, tmp_path, tmp_path).manager == "none"


def test_reconnect_restarts_in_the_host_without_forgetting_the_cloud(
    tmp_path: Path, host: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """N3: reconnect removed the cloud and disabled the unit, then its stop could fail."""
    asked: list[list[str]] = []

    def systemctl(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        asked.append(args)
        return subprocess.CompletedProcess(args, 0, stdout="", stderr="")

    monkeypatch.setattr("edgeagent.bridge.service.subprocess.run", systemctl)
    connected.add(tmp_path, "c8y")
    service = AskingService("c8y", tmp_path, tmp_path / "run", tmp_path / "log")
    assert service.restart() == "in the host"
    assert service.asked == ["restart c8y"]
    assert connected.names(tmp_path) == ["c8y"]
    assert not [args for args in asked if args[1] in ("disable", "stop")]
    assert host.poll() is None, "the host was stopped"


def test_the_unit_s_host_busy_with_its_first_starts_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N2: a list that timed out (or met a host binding its socket) failed the connect."""
    monkeypatch.setattr(
        "edgeagent.bridge.service.subprocess.run",
        lambda args, **_: subprocess.CompletedProcess(args, 0, stdout="", stderr=""),
    )
    answers: list[Exception] = [
        control.ControlUnavailable("binding"),
        control.ControlTimeout("busy starting aws and c8y"),
    ]
    real_request = control.request

    def request(run_dir: Path, body: dict[str, Any], timeout: float, *rest: Any) -> Any:
        if body["op"] == "list" and answers:
            raise answers.pop(0)
        return real_request(run_dir, body, timeout, *rest)

    monkeypatch.setattr("edgeagent.bridge.service.control.request", request)
    service = AskingService("az", tmp_path, tmp_path / "run", tmp_path / "log")
    with stand_in_host(tmp_path / "run", "c8y"):
        assert service._start_unit() == "in the host"
    assert service.asked == ["az"] and answers == []


def test_a_cloud_the_unit_s_host_failed_to_start_is_withdrawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N2: connect failed and forgot the cloud, and the host then retried and ran it."""
    monkeypatch.setattr(
        "edgeagent.bridge.service.subprocess.run",
        lambda args, **_: subprocess.CompletedProcess(args, 0, stdout="", stderr=""),
    )
    sent: list[dict[str, Any]] = []
    failed = {"running": False, "error": "SignerUnreachable", "message": "no signer", "fix": "x"}

    def request(run_dir: Path, body: dict[str, Any], timeout: float, *rest: Any) -> Any:
        sent.append(body)
        return {"ok": True, "pid": 1, "clouds": {"az": failed}, "retrying": ["az"]}

    monkeypatch.setattr("edgeagent.bridge.service.control.request", request)
    service = AskingService("az", tmp_path, tmp_path / "run", tmp_path / "log")
    with stand_in_host(tmp_path / "run", "c8y"), pytest.raises(errors.SignerUnreachable):
        service._start_unit()
    assert {"op": "stop", "cloud": "az"} in sent


def test_a_start_whose_child_never_answers_is_withdrawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N7: connect failed while the child went on to hand the plan to the host."""
    sent: list[dict[str, Any]] = []
    service = SystemdService("az", tmp_path, tmp_path / "run", tmp_path / "log")
    with stand_in_host(tmp_path / "run", "c8y"), monkeypatch.context() as patch:
        patch.setattr("edgeagent.bridge.service.spawn_for_answer", lambda command, timeout: None)
        patch.setattr(
            "edgeagent.bridge.service.control.request",
            lambda run_dir, body, timeout, *rest: sent.append(body) or {"ok": True},
        )
        with pytest.raises(errors.ServiceError, match="did not start within"):
            service._start_in_host()
    assert sent == [{"op": "stop", "cloud": "az"}]

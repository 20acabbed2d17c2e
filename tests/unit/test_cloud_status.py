"""`agent status`: the verdict per cloud and overall, from a bridge's process and status file."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.bridge.holder import RUNTIME_MODULE
from edgeagent.bridge.service import BridgeService
from edgeagent.bridge.status_file import BridgeStatus, LinkStatus
from edgeagent.clouds.status import (
    STALE_AFTER,
    BridgeProcess,
    CloudStatus,
    StatusReport,
    bridge_process,
)

UP = LinkStatus(up=True, since=1_764_612_250.0)


def status(**changes: object) -> BridgeStatus:
    fields: dict[str, object] = {
        "cloud": "c8y",
        "pid": 1234,
        "started_at": 1_764_612_248.0,
        "device_id": "device-001",
        "key_uri": "pkcs11:object=k",
        "updated_at": 1_764_612_300.0,
        "cloud_link": UP,
        "local_link": UP,
    }
    fields.update(changes)
    return BridgeStatus(**fields)  # type: ignore[arg-type]


def cloud(
    process: BridgeProcess, report: BridgeStatus | None, configured: bool = True
) -> CloudStatus:
    return CloudStatus(
        "c8y", "Cumulocity", configured, process, Path("/run/agent/status-c8y.json"), report
    )


RUNNING = BridgeProcess(True, 1234, "pid file", pid_file=Path("/run/agent/bridge-c8y.pid"))


def test_running_with_both_links_up_is_up() -> None:
    c8y = cloud(RUNNING, status())
    assert c8y.up and c8y.problem() is None
    assert StatusReport([c8y]).exit_error() is None
    assert StatusReport([c8y]).to_json()["up"] is True


def test_a_cloud_link_down_names_its_error() -> None:
    down = LinkStatus(False, 1_764_612_260.0, "c8y broker refused", 1_764_612_261.0, "TLS 1.3")
    problem = cloud(RUNNING, status(cloud_link=down)).problem()
    assert isinstance(problem, errors.BridgeLinkDown)
    assert problem.cause == (
        "the Cumulocity link is down since 2025-12-01 18:04:20 UTC: c8y broker refused"
    )


def test_a_status_file_of_another_run_says_nothing_about_this_one() -> None:
    c8y = cloud(RUNNING, status(pid=999))
    assert not c8y.current and not c8y.up
    problem = c8y.problem()
    assert isinstance(problem, errors.BridgeLinkDown)
    assert "has not reported its links yet" in problem.cause


def test_a_bridge_that_does_not_run_says_when_it_last_ran() -> None:
    stale = cloud(BridgeProcess(False), status())  # killed: never wrote stopped_at
    assert stale.last_ran_until == 1_764_612_300.0
    problem = stale.problem()
    assert isinstance(problem, errors.BridgeNotRunning)
    assert problem.cause.endswith("(last ran until 2025-12-01 18:05:00 UTC)")
    assert problem.fix == "agent connect c8y"
    stopped = cloud(BridgeProcess(False), status(stopped_at=1_764_612_290.0))
    assert stopped.last_ran_until == 1_764_612_290.0


def test_the_worst_cloud_decides_the_exit() -> None:
    down = cloud(RUNNING, status(local_link=LinkStatus()))
    gone = CloudStatus("az", "Azure IoT Hub", True, BridgeProcess(False), Path("/x"))
    unconfigured = CloudStatus("aws", "aws", False, BridgeProcess(False), Path("/y"))
    assert isinstance(
        StatusReport([down, gone, unconfigured]).exit_error(), errors.BridgeNotRunning
    )
    assert isinstance(StatusReport([down, unconfigured]).exit_error(), errors.BridgeLinkDown)
    assert StatusReport([cloud(RUNNING, status()), unconfigured]).exit_error() is None


def test_nothing_configured_is_a_missing_value() -> None:
    unconfigured = cloud(BridgeProcess(False), None, configured=False)
    error = StatusReport([unconfigured]).exit_error()
    assert isinstance(error, errors.MissingConfigValue)
    assert error.cause.startswith("no cloud is configured")
    named = StatusReport([unconfigured], named="c8y").exit_error()
    assert isinstance(named, errors.MissingConfigValue)
    assert named.cause == "c8y is not configured (c8y.url is not set)"


def test_the_json_has_every_key_whatever_is_known() -> None:
    known = cloud(RUNNING, status()).to_json()
    unknown = cloud(BridgeProcess(False), None, configured=False).to_json()
    assert known.keys() == unknown.keys()
    assert known["bridge"].keys() == unknown["bridge"].keys()
    assert unknown["cloud_link"] is None and unknown["forwarded"] is None
    assert known["cloud_link"] == {
        "up": True,
        "since": "2025-12-01T18:04:10Z",
        "last_error": None,
        "last_error_at": None,
        "tls_version": None,
    }


@dataclass(frozen=True)
class SystemdService(BridgeService):
    """Where systemd manages the bridge (not in this container): its answers, given."""

    active: bool = True

    @property
    def manager(self) -> str:  # type: ignore[override]
        return "systemd"

    def running_pid(self) -> int | None:
        return 4321 if self.active else None


def test_under_systemd_the_unit_says_whether_it_runs_and_its_main_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[list[str]] = []

    def systemctl(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        asked.append(args)
        return subprocess.CompletedProcess(args, 0, stdout="4321\n", stderr="")

    monkeypatch.setattr("edgeagent.clouds.status.subprocess.run", systemctl)
    where = (Path("/etc/agent"), Path("/run/agent"), Path("/var/log/agent"))
    running = bridge_process(SystemdService("c8y", *where), status(pid=4321))
    assert running == BridgeProcess(True, 4321, "systemd", unit="agent-bridge.service")
    assert asked == [
        ["systemctl", "show", "--property", "MainPID", "--value", "agent-bridge.service"]
    ]
    assert cloud(running, status(pid=4321)).up

    stopped = bridge_process(SystemdService("c8y", *where, active=False), status())
    assert stopped == BridgeProcess(False, managed_by="systemd", unit="agent-bridge.service")
    assert isinstance(cloud(stopped, status()).problem(), errors.BridgeNotRunning)


def test_a_status_file_not_rewritten_for_several_heartbeats_no_longer_speaks() -> None:
    written = 1_764_612_300.0
    fresh = CloudStatus(
        "c8y",
        "Cumulocity",
        True,
        RUNNING,
        Path("/run/agent/status-c8y.json"),
        status(),
        checked_at=written + STALE_AFTER - 1,
    )
    assert fresh.up
    stale = dataclasses.replace(fresh, checked_at=written + STALE_AFTER + 1)
    assert not stale.current and not stale.up
    problem = stale.problem()
    assert isinstance(problem, errors.BridgeLinkDown)
    assert problem.cause == (
        "the Cumulocity bridge (pid 1234) runs, but its state is unknown: "
        "/run/agent/status-c8y.json was last written at 2025-12-01 18:05:00 UTC"
    )


@pytest.fixture
def sleeper() -> Iterator[Callable[..., int]]:
    """A live process with the command line given (what status reads in /proc)."""
    children: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> int:
        code = "import os, time; os.close(1); time.sleep(60)"
        child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE)
        assert child.stdout is not None
        child.stdout.read()  # the interpreter runs: its command line is in /proc
        children.append(child)
        return child.pid

    yield start
    for child in children:
        child.kill()
        child.wait()


def test_a_foreground_bridge_without_pid_file_runs_but_not_the_host(
    tmp_path: Path, sleeper: Callable[..., int]
) -> None:
    service = BridgeService("c8y", tmp_path, tmp_path / "run", tmp_path / "log")
    foreground = sleeper(RUNTIME_MODULE)
    assert bridge_process(service, status(pid=foreground)) == BridgeProcess(
        True, foreground, "foreground"
    )
    # The host names itself in every cloud's status file and outlives a cloud it
    # stopped: without the cloud's pid file, its pid says nothing of the cloud.
    for how in ("--host", "--serve"):
        host = sleeper(RUNTIME_MODULE, how, str(tmp_path / "run"))
        assert bridge_process(service, status(pid=host)) == BridgeProcess(False)


@dataclass(frozen=True)
class UnreadablePidFile(SystemdService):
    """The pid file is 0600 and ours is another user (as BridgeService says then)."""

    def running_pid(self) -> int | None:
        try:
            raise PermissionError(13, "Permission denied")
        except PermissionError as error:
            raise errors.ServiceError(f"cannot open the pid file {self.pid_file}") from error


def test_a_pid_file_it_may_not_open_is_probed_in_proc_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def systemctl(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, stdout=f"{os.getpid()}\n", stderr="")

    monkeypatch.setattr("edgeagent.clouds.status.subprocess.run", systemctl)
    service = UnreadablePidFile("c8y", tmp_path, tmp_path, tmp_path)
    free = BridgeProcess(False, managed_by="systemd", unit="agent-bridge.service")
    assert bridge_process(service, status()) == free
    with service.pid_file.open("w") as held:
        assert bridge_process(service, status()) == free  # stale: nobody holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        running = bridge_process(service, status(pid=os.getpid()))
    assert running == BridgeProcess(True, os.getpid(), "systemd", unit="agent-bridge.service")
    assert service.pid_file.exists()  # looked at, never removed


def test_staleness_is_judged_on_the_boot_clock_not_the_stepped_wall_clock() -> None:
    """N8: NTP stepped the clock after boot; every running cloud read "state unknown"."""
    written = 1_764_612_300.0
    fresh = CloudStatus(
        "c8y",
        "Cumulocity",
        True,
        RUNNING,
        Path("/run/agent/status-c8y.json"),
        status(updated_uptime=100.0),
        checked_at=written + 3600,  # the wall clock jumped an hour forward
        checked_uptime=105.0,  # five seconds after the write
    )
    assert fresh.up and not fresh.stale
    hung = dataclasses.replace(
        fresh, checked_at=written - 3600, checked_uptime=100 + STALE_AFTER + 1
    )
    assert hung.stale and not hung.up
    earlier_boot = dataclasses.replace(fresh, checked_uptime=50.0)
    assert earlier_boot.stale
    # A status file and its round trip keep the boot clock.
    assert BridgeStatus.from_json(status(updated_uptime=7.5).to_json()).updated_uptime == 7.5

"""`agent status [CLOUD]`: what each cloud's bridge is doing, from its process and status file.

    report = gather(config_dir)             # every cloud the agent knows; or gather(dir, "c8y")
    report.exit_error()                      # None when every configured cloud is up
    json.dumps(report.to_json())             # the schema the README documents

A cloud is *configured* when ``<cloud>.url`` is set. Its bridge *runs* when
its pid file ``run.path/bridge-<cloud>.pid`` is locked
(``BridgeService.running_pid``; where the file may not be opened, as by a
monitoring user under systemd, ``/proc/locks`` names its holder; under
systemd, the bridge host's unit ``agent-bridge.service`` gives the pid), else
when the status file names a live process that is one cloud's bridge runtime
(a foreground `agent bridge run --pid-file` holding another pid file, as a
container's entry point may run it; never the bridge host, whose clouds all
hold their pid files). The bridge's status file
(``edgeagent/bridge/status_file.py``) tells the rest: links, errors, TLS
version, counters, key, as long as the bridge keeps rewriting it
(``STALE_AFTER``). A status file whose bridge does not run is
history: "not running (last ran until ...)".

A cloud is *up* when its bridge runs, has reported from this run, and both
its links are up. The exit error follows the worst cloud: a bridge that
does not run (``BridgeNotRunning``), then a link down or not reported yet
(``BridgeLinkDown``); no cloud configured, or the named one not, is
``MissingConfigValue``.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeagent.bridge.holder import RUNTIME_MODULE
from edgeagent.bridge.proc_locks import flock_holder
from edgeagent.bridge.processes import process_alive
from edgeagent.bridge.service import BridgeService
from edgeagent.bridge.status_file import (
    HEARTBEAT,
    SCHEMA,
    BridgeStatus,
    EachWay,
    LinkStatus,
    iso_time,
    read_status,
    status_path,
    uptime,
)
from edgeagent.clouds.registry import CLOUDS, cloud_title, require_cloud
from edgeagent.config import AgentConfig, load_config
from edgeagent.errors import (
    AgentError,
    BridgeLinkDown,
    BridgeNotRunning,
    MissingConfigValue,
    ServiceError,
)

STALE_AFTER = 3 * HEARTBEAT
"""A running bridge's status file older than this (seconds) no longer speaks for it."""


@dataclass(frozen=True)
class BridgeProcess:
    """Whether a cloud's bridge runs, and how it was started."""

    running: bool
    pid: int | None = None
    managed_by: str | None = None  # "systemd", "pid file", "foreground"
    unit: str | None = None  # systemd's unit, where systemd manages the bridge
    pid_file: Path | None = None


@dataclass(frozen=True)
class CloudStatus:
    cloud: str
    title: str
    configured: bool
    process: BridgeProcess
    status_path: Path
    status: BridgeStatus | None = None  # the status file, this run's or the last one's
    status_error: str | None = None  # why the status file could not be read
    log_file: Path | None = None
    checked_at: float | None = None  # time.time() of the look; None: never stale
    checked_uptime: float | None = None  # status_file.uptime() of the look

    @property
    def current(self) -> bool:
        """The status file speaks for the bridge running now."""
        return (
            self.process.running
            and self.status is not None
            and self.status.stopped_at is None
            and (self.process.pid is None or self.status.pid == self.process.pid)
            and not self.stale
        )

    @property
    def stale(self) -> bool:
        """The status file has not been rewritten for several heartbeats: a bridge
        that runs rewrites it at least every ``HEARTBEAT`` seconds, so what it says
        is no longer known to hold (a bridge hung, or a cloud gone from the host)."""
        if self.checked_at is None or self.status is None:
            return False
        written = self.status.updated_uptime
        if written is not None and self.checked_uptime is not None:
            # The boot clock, not the wall clock: an NTP step after boot made
            # every running cloud "unknown", or hid a hung one (N8). A value
            # from the future is a file from an earlier boot.
            age = self.checked_uptime - written
            return age > STALE_AFTER or age < 0
        return self.checked_at - self.status.updated_at > STALE_AFTER

    @property
    def up(self) -> bool:
        return (
            self.current
            and self.status is not None
            and self.status.cloud_link.up
            and self.status.local_link.up
        )

    @property
    def last_ran_until(self) -> float | None:
        """For a bridge that does not run: when its status file last spoke."""
        if self.process.running or self.status is None:
            return None
        return self.status.stopped_at or self.status.updated_at

    def problem(self) -> AgentError | None:
        """Why this cloud is not up, with the fix; None when it is (or is not configured)."""
        if not self.configured:
            return None
        if not self.process.running:
            cause = f"the {self.title} bridge is not running"
            if self.last_ran_until is not None:
                cause += f" (last ran until {human_time(self.last_ran_until)})"
            return BridgeNotRunning(cause, f"agent connect {self.cloud}")
        status = self.status
        if not self.current or status is None:
            why = self.status_error or "it has not reported its links yet"
            if self.stale and status is not None:
                why = f"{self.status_path} was last written at {human_time(status.updated_at)}"
            return BridgeLinkDown(
                f"the {self.title} bridge{_pid_text(self.process)} runs, "
                f"but its state is unknown: {why}",
                "run `agent status` again in a few seconds"
                + (f"; see {self.log_file}" if self.log_file else ""),
            )
        if not status.cloud_link.up:
            return BridgeLinkDown(
                f"the {self.title} link is down{_down_text(status.cloud_link)}",
                f"agent doctor {self.cloud} checks every link to {self.title}",
            )
        if not status.local_link.up:
            return BridgeLinkDown(
                f"the local broker link is down{_down_text(status.local_link)}",
                "start the local broker (mosquitto), or fix mqtt.client.host / mqtt.client.port",
            )
        return None

    def to_json(self) -> dict[str, Any]:
        status = self.status
        problem = self.problem()

        def link(state: LinkStatus | None) -> dict[str, Any] | None:
            if state is None:
                return None
            return {
                "up": state.up,
                "since": _iso(state.since),
                "last_error": state.last_error,
                "last_error_at": _iso(state.last_error_at),
                "tls_version": state.tls_version,
            }

        counters = status.counters if status is not None else None
        return {
            "cloud": self.cloud,
            "title": self.title,
            "configured": self.configured,
            "up": self.up,
            "problem": problem.cause if problem is not None else None,
            "bridge": {
                "running": self.process.running,
                "pid": self.process.pid,
                "since": _iso(status.started_at) if self.current and status else None,
                "managed_by": self.process.managed_by,
                "unit": self.process.unit,
                "pid_file": str(self.process.pid_file) if self.process.pid_file else None,
                "last_ran_until": _iso(self.last_ran_until),
                "stopped_at": _iso(status.stopped_at) if status is not None else None,
            },
            "cloud_link": link(status.cloud_link if status else None),
            "local_link": link(status.local_link if status else None),
            "forwarded": _each_way(counters.forwarded if counters else None),
            "in_flight": _each_way(counters.in_flight if counters else None),
            "dropped": (
                {
                    "oversize": counters.dropped.oversize,
                    "no_rule": counters.dropped.no_rule,
                    "qos0_link_down": counters.dropped.qos0_link_down,
                }
                if counters
                else None
            ),
            "device_id": status.device_id if status else None,
            "key_uri": status.key_uri if status else None,
            "status_file": str(self.status_path),
            "updated_at": _iso(status.updated_at) if status else None,
        }


@dataclass(frozen=True)
class StatusReport:
    clouds: list[CloudStatus]
    named: str | None = None  # the cloud asked about, if one was

    @property
    def configured(self) -> list[CloudStatus]:
        return [c for c in self.clouds if c.configured]

    def exit_error(self) -> AgentError | None:
        """The error the exit code follows; None when every configured cloud is up."""
        if self.named is not None and not self.configured:
            return MissingConfigValue(
                f"{self.named} is not configured ({self.named}.url is not set)",
                f"agent config set {self.named}.url <host[:port]>",
            )
        if not self.configured:
            return MissingConfigValue(
                "no cloud is configured (" + ", ".join(f"{c}.url" for c in CLOUDS) + " unset)",
                "agent config set <cloud>.url <host[:port]>, then agent connect <cloud>",
            )
        problems = [p for p in (c.problem() for c in self.configured) if p is not None]
        for worst in (BridgeNotRunning, BridgeLinkDown):
            for problem in problems:
                if isinstance(problem, worst):
                    return problem
        return problems[0] if problems else None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "up": self.exit_error() is None,
            "clouds": [cloud.to_json() for cloud in self.clouds],
        }


def gather(config_dir: Path, cloud: str | None = None) -> StatusReport:
    """The status of ``cloud``, or of every cloud the agent knows."""
    config = load_config(config_dir)
    names = [require_cloud(cloud)] if cloud is not None else list(CLOUDS)
    return StatusReport([cloud_status(config, config_dir, name) for name in names], cloud)


def cloud_status(config: AgentConfig, config_dir: Path, cloud: str) -> CloudStatus:
    configured = config.cloud(cloud).url is not None
    path = status_path(config.run.path, cloud)
    status: BridgeStatus | None = None
    status_error: str | None = None
    try:
        status = read_status(path)
    except AgentError as error:
        status_error = error.cause
    if status is not None and status.cloud != cloud:
        status_error = f"{path} is the status of {status.cloud!r}"
        status = None
    service = BridgeService.of(cloud, config_dir, config)
    return CloudStatus(
        cloud=cloud,
        title=cloud_title(cloud),
        configured=configured,
        process=bridge_process(service, status),
        status_path=path,
        status=status,
        status_error=status_error,
        log_file=None if service.manager == "systemd" else service.log_file,
        checked_at=time.time(),
        checked_uptime=uptime(),
    )


def bridge_process(service: BridgeService, status: BridgeStatus | None) -> BridgeProcess:
    """Whether the bridge for ``service.cloud`` runs: systemd, its pid file, or the status file."""
    pid = _pid_file_holder(service)
    if service.manager == "systemd":
        if pid is None:
            return BridgeProcess(False, managed_by="systemd", unit=service.unit)
        return BridgeProcess(True, _main_pid(service.unit), "systemd", unit=service.unit)
    if pid is not None:
        return BridgeProcess(True, pid if pid > 0 else None, "pid file", pid_file=service.pid_file)
    if status is not None and status.stopped_at is None and _is_foreground_bridge(status.pid):
        return BridgeProcess(True, status.pid, "foreground")
    return BridgeProcess(False)


def _pid_file_holder(service: BridgeService) -> int | None:
    """The pid holding the cloud's pid file (-1 or 0: held, pid unknown); None when free.

    A monitoring user may not open it (0600 under systemd's ``UMask=0077``) nor
    remove a stale one from ``run.path``: then ``/proc/locks`` names its holder.
    The file is only looked at, never touched, so a live bridge's pid file is
    never reported as a problem to remove.
    """
    try:
        return service.running_pid()
    except (PermissionError, ServiceError) as error:
        cause = error if isinstance(error, OSError) else error.__cause__
        if not isinstance(cause, PermissionError):
            raise
    try:
        return flock_holder(service.pid_file)
    except OSError:
        return None


def _is_foreground_bridge(pid: int) -> bool:
    """``pid`` runs and is one cloud's bridge runtime (not a pid reused by something else).

    Not the bridge host (``--host``, ``--serve``): its status files all name it,
    and it runs on after one of its clouds stopped; a cloud it runs always holds
    its pid file, so the host's pid says nothing about this cloud.
    """
    if not process_alive(pid):
        return False
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    args = raw.split(b"\0")
    return RUNTIME_MODULE.encode() in args and not {b"--host", b"--serve"} & set(args)


def _main_pid(unit: str) -> int | None:
    done = subprocess.run(
        ["systemctl", "show", "--property", "MainPID", "--value", unit],
        capture_output=True,
        text=True,
        check=False,
    )
    text = done.stdout.strip()
    return int(text) if text.isdigit() and text != "0" else None


def _pid_text(process: BridgeProcess) -> str:
    return f" (pid {process.pid})" if process.pid is not None else ""


def _down_text(link: LinkStatus) -> str:
    text = f" since {human_time(link.since)}" if link.since is not None else ""
    if link.last_error:
        text += f": {link.last_error}"
    return text


def _each_way(counts: EachWay | None) -> dict[str, int] | None:
    if counts is None:
        return None
    return {"to_cloud": counts.to_cloud, "to_local": counts.to_local}


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else iso_time(seconds)


def human_time(seconds: float) -> str:
    """``2026-12-01 18:04:08 UTC``."""
    return iso_time(seconds).replace("T", " ").replace("Z", " UTC")

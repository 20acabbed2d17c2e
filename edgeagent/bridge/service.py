"""Run, find and stop the bridge for one cloud.

Every connected cloud runs in one process, the bridge host
(edgeagent/bridge/host.py), as a thread of its own. Where systemd manages
the machine the host is the unit ``agent-bridge.service`` (``agent bridge
host``, shipped in ``packaging/``), which brings up the connected clouds
(edgeagent/bridge/connected.py) at boot. Elsewhere (containers, CI) ``start``
runs ``agent bridge run <cloud> --host``, which becomes the host, detached,
or hands the cloud's plan to the running one over its control socket, and
reports this start's outcome (or error) on its stdout. Whatever runs a cloud
holds an exclusive ``flock`` on ``run.path/bridge-<cloud>.pid`` while it
runs, so a pid file whose lock is free is stale and is never mistaken for a
live bridge: the pid files, not the unit's state, say which clouds run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.bridge import connected, control, timeouts
from edgeagent.bridge.holder import (
    HOST_PID_FILE,
    check_bridge_holder,
    how_it_runs,
    open_pid_file,
    pid_file_for,
)
from edgeagent.bridge.logs import HOST, log_file_for, log_tail, size_of
from edgeagent.bridge.processes import locked_pid, process_alive, spawn_for_answer
from edgeagent.config.locations import is_system_config_dir
from edgeagent.errors import AgentError, BridgeAlreadyRunning, ServiceError
from edgeagent.safe_files import ensure_private_dir, open_no_follow

if TYPE_CHECKING:
    from edgeagent.config import AgentConfig

UNIT = "agent-bridge.service"
"""The bridge host under systemd (packaging/agent-bridge.service)."""

log = logging.getLogger("edgeagent.bridge")


def systemd_is_running() -> bool:
    """sd_booted(): true only when systemd is PID 1 (not in most containers)."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


@dataclass(frozen=True)
class BridgeService:
    cloud: str
    config_dir: Path
    run_dir: Path
    log_dir: Path
    _log_start: list[int] = field(default_factory=list, compare=False, repr=False)
    """Where this start's lines begin in the log file (log_tail shows only those)."""

    @classmethod
    def of(cls, cloud: str, config_dir: Path, config: AgentConfig) -> BridgeService:
        """``cloud``'s bridge, with the run and log directories ``config`` names."""
        return cls(cloud, config_dir, config.run.path, config.logs.path)

    @property
    def unit(self) -> str:
        return UNIT

    @property
    def pid_file(self) -> Path:
        return pid_file_for(self.run_dir, self.cloud)

    @property
    def log_file(self) -> Path:
        return log_file_for(self.log_dir, self.cloud)

    @property
    def log_hint(self) -> str:
        """Where this cloud's bridge logs: its file, or the unit's journal."""
        if self.manager == "systemd":
            return f"journalctl -u {self.unit}"
        return str(self.log_file)

    @property
    def host_log_hint(self) -> str:
        """Where the bridge host logs its own records: its file, or the unit's journal."""
        if self.manager == "systemd":
            return f"journalctl -u {self.unit}"
        return str(log_file_for(self.log_dir, HOST))

    def _request(self, body: dict[str, object], timeout: float) -> dict[str, object]:
        return control.request(self.run_dir, body, timeout, self.host_log_hint)

    @functools.cached_property
    def manager(self) -> str:
        """ "systemd" when the unit can serve this config dir, else "none"."""
        if not is_system_config_dir(self.config_dir) or not systemd_is_running():
            return "none"
        found = subprocess.run(["systemctl", "cat", self.unit], capture_output=True, check=False)
        return "systemd" if found.returncode == 0 else "none"

    # -- queries -----------------------------------------------------------------

    def running_pid(self) -> int | None:
        """The pid of the live process running this cloud's bridge, or None."""
        return locked_pid(self.pid_file)

    def host_pid(self) -> int | None:
        """The pid of the live bridge host (every connected cloud's process), or None."""
        return locked_pid(self.run_dir / HOST_PID_FILE)

    def describe_running(self) -> str:
        """Which process runs this cloud's bridge and how, e.g. "pid 42, in the bridge
        host" or "pid 42, systemd unit agent-bridge.service"; "" when none does."""
        pid = self.running_pid()
        if pid is None:
            return ""
        return f"pid {pid}, {how_it_runs(pid, self.run_dir)}" if pid > 0 else str(self.pid_file)

    def is_running(self) -> bool:
        return self.running_pid() is not None

    # -- start / stop --------------------------------------------------------------

    def start(self) -> str:
        """Start the bridge; returns how (for the summary).

        Raises this start's own error: the host's reply (a wrong PIN is
        PinIncorrect, as if it had happened here), or what the starting
        command printed; never the tail of a log that holds earlier runs.
        """
        if self.manager == "systemd":
            # The unit's host reads the connected clouds when it starts.
            added = self._remember(fatal=True)
            try:
                # A host that has no cloud left is on its way out: let it go first.
                self._wait_host_gone_if_idle(self.host_pid())
                return self._start_unit() if self.host_pid() is None else self._start_in_host()
            except BaseException:
                if added:  # else it was connected before this call: it stays so
                    with contextlib.suppress(OSError):
                        connected.remove(self.config_dir, self.cloud)
                raise
        how = self._start_in_host()
        self._remember(fatal=False)
        return how

    def restart(self) -> str:
        """Stop the running bridge and start it again with the configuration as it
        is now (`agent reconnect`, a certificate renewal); returns how.

        When the cloud runs in the host, the host does both under the cloud's
        lock: connected-clouds and the systemd unit are never touched, and the
        host never finds itself with no cloud (so never exits) in between (N3).
        """
        pid = self.running_pid()
        if pid is not None and pid > 0 and pid == self.host_pid():
            how = self._start_in_host(restart=True)
            self._remember(fatal=False)  # it is connected; a no-op but for a lost record
            return how
        if pid is not None:
            self.stop()
        return self.start()

    def _remember(self, *, fatal: bool) -> bool:
        """Add the cloud to the connected ones (`agent bridge host` starts them);
        True when this call added it."""
        try:
            return connected.add(self.config_dir, self.cloud)
        except OSError as error:
            problem = f"cannot record {self.cloud} in {connected.path(self.config_dir)}: {error}"
            if fatal:
                raise ServiceError(
                    problem, "run agent connect as the user that owns the configuration (root)"
                ) from error
            log.warning("%s; `agent bridge host` will not start it", problem)
            return False

    def _start_unit(self) -> str:
        """``systemctl enable --now``, then wait for the cloud's pid file (or its error)."""
        _systemctl("enable", "--now", self.unit)
        started = time.monotonic()
        while time.monotonic() - started < timeouts.RUN_START:
            pid = self.running_pid()
            if pid is not None:
                return f"systemd unit {self.unit}, pid {pid}"
            if self.host_pid() is not None:
                try:
                    listing = self._request({"op": "list"}, timeouts.CONTROL_LIST)
                except (control.ControlUnavailable, control.ControlTimeout):
                    # Binding its socket, or busy with its first starts: ask again (N2).
                    time.sleep(0.1)
                    continue
                clouds = listing.get("clouds")
                state = clouds.get(self.cloud) if isinstance(clouds, dict) else None
                if state is None:
                    # The host read connected-clouds before this cloud was in it:
                    # nobody would start it, so ask the host to.
                    try:
                        return self._start_in_host()
                    except BridgeAlreadyRunning:
                        pass  # it did start it meanwhile: its pid file says so next
                elif state.get("error"):
                    # The host may retry it: this command fails, so it must not (N2).
                    self._withdraw_retry()
                    raise control.error_of(state)
            else:
                active = subprocess.run(
                    ["systemctl", "is-active", "--quiet", self.unit], check=False
                )
                if active.returncode != 0 and time.monotonic() - started > 2:
                    raise ServiceError(
                        f"{self.unit} stopped without starting {self.cloud}",
                        f"see journalctl -u {self.unit}",
                    )
            time.sleep(0.1)
        self._withdraw_retry()  # this command fails: the host must not start it later
        raise ServiceError(
            f"{self.unit} did not start {self.cloud} within {timeouts.RUN_START:.0f} s",
            f"see journalctl -u {self.unit}",
        )

    def _start_in_host(self, *, restart: bool = False) -> str:
        """``agent bridge run <cloud> --host``: this start's reply, or its error
        (``restart``: the host stops the running bridge first)."""
        if self.manager != "systemd":  # else the unit's user owns them (and the journal logs)
            ensure_private_dir(self.run_dir, "run.path")
            ensure_private_dir(self.log_dir, "logs.path")
            # Never a link planted at the log's name (the host opens it the same way).
            os.close(open_no_follow(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
            self._log_start[:] = [size_of(self.log_file)]
        command = [
            sys.executable,
            "-m",
            "edgeagent",
            "--config-dir",
            str(self.config_dir),
            "bridge",
            "run",
            self.cloud,
            "--host",
            *(["--restart"] if restart else []),
        ]
        answer = spawn_for_answer(command, timeouts.RUN_START)
        if answer is None:
            # The child may still hand the plan over: this start failed, so the
            # host must not go on to run the cloud (N7).
            self._withdraw_retry()
            raise ServiceError(
                f"the bridge did not start within {timeouts.RUN_START:.0f} s",
                f"see {self.log_hint}",
            )
        reply, complaint = answer
        if reply is None:
            raise ServiceError(f"the bridge could not start: {complaint}", f"see {self.log_hint}")
        control.raise_for(reply)
        pid = int(str(reply["pid"]))
        if self.running_pid() != pid:
            raise ServiceError(
                f"the bridge host (pid {pid}) said {self.cloud} started, "
                f"but {self.pid_file} does not name it",
                f"see {self.log_hint}",
            )
        return f"pid {pid}, log {self.log_file}"

    def stop(self) -> bool:
        """Stop the bridge; False when it was not running."""
        with contextlib.suppress(OSError):  # a cloud we could never record
            connected.remove(self.config_dir, self.cloud)
        if self.manager == "systemd" and not connected.names(self.config_dir):
            # The host exits with its last cloud; at boot there is nothing to start.
            _systemctl("disable", self.unit)
        pid = self.running_pid()
        if pid is None:
            self._withdraw_retry()
            return False
        if pid > 0 and pid == self.host_pid():
            # Only this cloud's thread stops; the host answers once it has.
            control.raise_for(
                self._request({"op": "stop", "cloud": self.cloud}, timeouts.CONTROL_STOP)
            )
            deadline = time.monotonic() + timeouts.PROCESS_STOP
            while self.running_pid() == pid and time.monotonic() < deadline:
                time.sleep(0.05)
            self._wait_host_gone_if_idle(pid)
            return True
        return self._stop_process(pid)

    def _withdraw_retry(self) -> None:
        """The host may be waiting to start this cloud again (its start failed
        for a reason that may pass): tell it not to."""
        if self.host_pid() is None:
            return
        with contextlib.suppress(AgentError):
            self._request({"op": "stop", "cloud": self.cloud}, timeouts.CONTROL_STOP)

    def _wait_host_gone_if_idle(self, host: int | None) -> None:
        """When the host ``host`` runs no cloud any more it is exiting: wait until it has.

        A start in that window would ask a host that no longer answers, or
        (under systemd) find the unit still active and start nothing. So the
        host's pid file must be free, its process gone and (under systemd) the
        unit inactive. Raises ServiceError when that takes over PROCESS_STOP,
        unless the host serves a cloud again by then (another start revived it).
        """
        if host is None or self._host_serves():
            return  # it goes on serving the others (or starting them again)
        deadline = time.monotonic() + timeouts.PROCESS_STOP
        while True:
            held = self.host_pid()
            if held is not None:
                host = held
            gone = held is None and (host < 0 or not process_alive(host))
            if gone and not self._unit_active():
                return
            if time.monotonic() > deadline:
                if held is not None and self._host_serves():
                    return  # revived by a concurrent start: it serves on (N3)
                raise ServiceError(
                    f"the bridge host (pid {host}) did not exit within "
                    f"{timeouts.PROCESS_STOP:.0f} s after its last cloud stopped",
                    f"see {self.log_hint}",
                )
            time.sleep(0.05)

    def _host_serves(self) -> bool:
        """Whether the host runs a cloud (or will retry one); False when it is exiting."""
        try:
            listing = self._request({"op": "list"}, timeouts.CONTROL_LIST)
        except control.ControlUnavailable:
            return False  # it stopped serving: it is exiting
        except ServiceError:
            return True  # busy starting a cloud: it is not exiting
        clouds = listing.get("clouds")
        states = clouds.values() if isinstance(clouds, dict) else []
        return bool(listing.get("retrying")) or any(
            isinstance(state, dict) and state.get("running") for state in states
        )

    def _unit_active(self) -> bool:
        """Under systemd: is agent-bridge.service still active?"""
        if self.manager != "systemd":
            return False
        done = subprocess.run(["systemctl", "is-active", "--quiet", self.unit], check=False)
        return done.returncode == 0

    def _stop_process(self, pid: int) -> bool:
        """A bridge in a process of its own (`agent bridge run`): SIGTERM it."""
        if pid > 0:
            self._check_holder(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        # The bridge releases its pid file just before it exits: wait for the
        # process itself, so "disconnected" means the old bridge is gone.
        deadline = time.monotonic() + timeouts.PROCESS_STOP
        while self.running_pid() is not None or (pid > 0 and process_alive(pid)):
            if time.monotonic() > deadline:
                if pid > 0:
                    self._check_holder(pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)
                break
            time.sleep(0.05)
        return True

    def _check_holder(self, pid: int) -> None:
        """Signal only our bridge: not whatever pid a planted pid file names."""
        fd = open_pid_file(self.pid_file)
        try:
            check_bridge_holder(pid, self.pid_file, fd)
        finally:
            if fd is not None:
                os.close(fd)

    def log_tail(self, lines: int = 15) -> str:
        """The log's last lines, from this start's on when this object started it."""
        return log_tail(self.log_file, self._log_start[0] if self._log_start else 0, lines)


def _systemctl(*args: str) -> None:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServiceError(
            f"systemctl {' '.join(args)} failed: {done.stderr.strip()}",
            f"see journalctl -u {UNIT}",
        )

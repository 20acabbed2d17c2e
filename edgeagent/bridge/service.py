"""Run, find and stop the bridge process for one cloud.

Where systemd manages the machine, the bridge is the unit
``agent-bridge@<cloud>.service`` (shipped in ``packaging/``). Elsewhere
(containers, CI) ``agent bridge run <cloud>`` is started detached; it holds an
exclusive ``flock`` on its pid file for its whole life, so a pid file whose
lock is free is stale and is never mistaken for a live bridge.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgeagent.bridge.holder import check_bridge_holder, open_pid_file
from edgeagent.errors import ServiceError
from edgeagent.safe_files import ensure_private_dir, open_no_follow

DEFAULT_CONFIG_DIR = Path("/etc/agent")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def systemd_is_running() -> bool:
    """sd_booted(): true only when systemd is PID 1 (not in most containers)."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


@dataclass(frozen=True)
class BridgeService:
    cloud: str
    config_dir: Path
    run_dir: Path
    log_dir: Path

    @property
    def unit(self) -> str:
        return f"agent-bridge@{self.cloud}.service"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"bridge-{self.cloud}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"bridge-{self.cloud}.log"

    @functools.cached_property
    def manager(self) -> str:
        """ "systemd" when the unit can serve this config dir, else "none"."""
        if self.config_dir.resolve() != DEFAULT_CONFIG_DIR or not systemd_is_running():
            return "none"
        found = subprocess.run(["systemctl", "cat", self.unit], capture_output=True, check=False)
        return "systemd" if found.returncode == 0 else "none"

    # -- queries -----------------------------------------------------------------

    def running_pid(self) -> int | None:
        """The pid of the live detached bridge, or None."""
        fd = open_pid_file(self.pid_file)
        if fd is None:
            return None
        with os.fdopen(fd, "r") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read().strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(handle, fcntl.LOCK_UN)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()  # stale: its owner is gone
        return None

    def is_running(self) -> bool:
        if self.manager == "systemd":
            state = subprocess.run(["systemctl", "is-active", "--quiet", self.unit], check=False)
            return state.returncode == 0
        return self.running_pid() is not None

    # -- start / stop --------------------------------------------------------------

    def start(self) -> str:
        """Start the bridge; returns how (for the summary)."""
        if self.manager == "systemd":
            _systemctl("enable", "--now", self.unit)
            return f"systemd unit {self.unit}"
        ensure_private_dir(self.run_dir, "run.path")
        ensure_private_dir(self.log_dir, "logs.path")
        command = [
            sys.executable,
            "-m",
            "edgeagent",
            "--config-dir",
            str(self.config_dir),
            "bridge",
            "run",
            self.cloud,
            "--pid-file",
            str(self.pid_file),
        ]
        log_fd = open_no_follow(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(log_fd, "ab") as log:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise ServiceError(
                    f"the bridge exited at start (code {child.returncode}):\n" + self.log_tail(),
                    f"see {self.log_file}",
                )
            if self.running_pid() == child.pid:
                return f"pid {child.pid}, log {self.log_file}"
            time.sleep(0.05)
        child.terminate()
        raise ServiceError(
            f"the bridge did not start within {START_TIMEOUT:.0f} s", f"see {self.log_file}"
        )

    def stop(self) -> bool:
        """Stop the bridge; False when it was not running."""
        if self.manager == "systemd":
            was_active = self.is_running()
            _systemctl("disable", "--now", self.unit)
            return was_active
        pid = self.running_pid()
        if pid is None:
            return False
        if pid > 0:
            self._check_holder(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        # The bridge releases its pid file just before it exits: wait for the
        # process itself, so "disconnected" means the old bridge is gone.
        deadline = time.monotonic() + STOP_TIMEOUT
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
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Field 3, after the parenthesised command name (which may hold spaces).
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _systemctl(*args: str) -> None:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServiceError(
            f"systemctl {' '.join(args)} failed: {done.stderr.strip()}",
            "see journalctl -u agent-bridge@<cloud>",
        )

"""Is this pid really our bridge? Checked before ``agent disconnect`` signals it.

    check_bridge_holder(pid, Path("/run/agent/bridge-c8y.pid"))  # or ServiceError

A pid file whose lock is held names a live process, but not necessarily
ours: whoever can write the run directory can plant a file naming any pid
and hold its lock from a process of their own. So before a signal, the pid
must be the bridge runtime started for this pid file (its
``/proc/<pid>/cmdline``) and must itself hold the file's lock
(``/proc/locks``).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeagent.errors import BridgeAlreadyRunning, ServiceError

RUNTIME_MODULE = "edgeagent.cli.bridge_runtime"
"""The lean runtime `agent bridge run` and `agent bridge host` exec into (bridge/runtime.py)."""
HOST_PID_FILE = "bridge-host.pid"
"""In ``run.path``: held by the bridge host (one process serving every connected cloud)."""


def pid_file_for(run_dir: Path, cloud: str) -> Path:
    """``run.path/bridge-<cloud>.pid``: held by whatever runs the cloud's bridge."""
    return run_dir / f"bridge-{cloud}.pid"


def cloud_of_pid_file(path: Path) -> str | None:
    """``c8y`` for ``.../bridge-c8y.pid``; None for the host's own pid file."""
    if path.name == HOST_PID_FILE:
        return None
    return path.name.removeprefix("bridge-").removesuffix(".pid")


def how_it_runs(pid: int, run_dir: Path) -> str:
    """How the bridge process ``pid`` was started, in the user's words."""
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        cgroup = ""
    for unit in cgroup.replace("\n", "/").split("/"):
        if unit.startswith("agent-bridge") and unit.endswith(".service"):
            return f"systemd unit {unit}"
    try:
        if (run_dir / HOST_PID_FILE).read_text().strip() == str(pid):
            return "in the bridge host"
    except OSError:
        pass
    return "a foreground `agent bridge run`"


def already_running(path: Path, pid: int | None) -> BridgeAlreadyRunning:
    """The refusal for a second bridge whose pid file ``path`` names ``pid``."""
    cloud = cloud_of_pid_file(path)
    how = "" if pid is None else f"pid {pid}, {how_it_runs(pid, path.parent)}"
    if cloud is None:
        return BridgeAlreadyRunning(
            f"the bridge host is already running ({how}; {path})",
            "it serves every connected cloud: use agent connect <cloud>",
        )
    return BridgeAlreadyRunning(
        f"the {cloud} bridge is already running ({how}); one bridge per cloud",
        f"leave it running, or stop it first: agent disconnect {cloud}",
    )


def open_pid_file(path: Path) -> int | None:
    """A read-only fd on ``path`` without following a link; None when it does not exist."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except PermissionError as error:
        # Not ours to read (0600, another user's): a permission problem, and
        # the bridge may well be alive; never advise removing its pid file.
        raise ServiceError(
            f"cannot read the pid file {path}: {error.strerror}",
            f"run this as the bridge's user or root, or check {path}'s mode (0644)",
        ) from error
    except OSError as error:
        raise ServiceError(
            f"cannot open the pid file {path}: {error.strerror} "
            "(a symbolic link is never followed)",
            f"remove it (rm {path}) and check who can write {path.parent}",
        ) from error


def check_bridge_holder(pid: int, pid_file: Path, fd: int | None) -> None:
    """Raise ServiceError unless ``pid`` is the bridge runtime for ``pid_file``.

    ``fd``: the pid file, open; its lock must then be held by ``pid``. None
    once the bridge has released (unlinked) it on its way out: the command
    line is all there is left to check.
    """
    problem = _not_our_bridge(pid, pid_file)
    if problem is None and fd is not None:
        problem = _not_the_lock_holder(pid, fd)
    if problem is not None:
        raise ServiceError(
            f"{pid_file} names pid {pid}, which is not this bridge ({problem}); "
            "nothing was signalled",
            f"check who wrote {pid_file}; if no bridge runs, remove it (rm {pid_file})",
        )


def _not_our_bridge(pid: int, pid_file: Path) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except FileNotFoundError:
        return "no such process"
    except OSError as error:
        return f"cannot read its command line: {error.strerror}"
    args = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if RUNTIME_MODULE not in args:
        return f"its command is {' '.join(args)[:120]!r}"
    try:
        named = Path(args[args.index("--pid-file") + 1])
    except (ValueError, IndexError):
        return "it runs without a pid file"
    if os.path.normpath(cwd / named) != os.path.normpath(pid_file.absolute()):
        return f"it holds {named}, another pid file"
    return None


def _not_the_lock_holder(pid: int, fd: int) -> str | None:
    info = os.fstat(fd)
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        locks = Path("/proc/locks").read_text()
    except OSError as error:
        return f"cannot read /proc/locks: {error.strerror}"
    for line in locks.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            if fields[4] == str(pid):
                return None
            return f"the file's lock is held by pid {fields[4]}"
    return "nobody holds the file's lock"

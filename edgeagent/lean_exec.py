"""Hand a long-running job to a lean interpreter: same pid, what it needs through a pipe.

    exec_lean("edgeagent.cli.bridge_runtime", plan_json, "--pid-file", "/run/x.pid")
    # ... in the new program, started with --payload-fd FD:
    plan_json = read_payload(args.payload_fd)
    stop = stop_on_signals()          # set by SIGTERM / SIGINT

`agent bridge run` and `agent p11-server` read and validate the configuration
(pydantic, tomlkit: ~10 MB of resident memory), then exec a program that
never imports them. The payload may hold a PIN: a pipe keeps it out of argv
and the environment, where other users could read it.

Both halves call ``keep_secrets_out_of_dumps()`` before they read a PIN, and
``exec_lean`` drops the PIN variables (``AGENT_..._PIN``) from the
environment it hands on: /proc/<pid>/environ lasts as long as the process.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import NoReturn

from edgeagent.errors import ServiceError

_PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def keep_secrets_out_of_dumps() -> None:
    """No core file, and no ptrace or /proc/<pid>/mem by other processes of our user.

    ``PR_SET_DUMPABLE 0`` also makes /proc/<pid>/* root's, so the same user
    cannot read this process's memory or environment either; the kernel
    resets it on exec, so the lean runtime calls this again. ``RLIMIT_CORE 0``
    survives exec and covers a core_pattern that ignores the dumpable flag.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise ServiceError(
            f"cannot make this process non-dumpable (prctl: {os.strerror(errno)})",
            "run the agent on Linux without a seccomp policy that forbids prctl",
        )


def without_pins(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the agent's PIN variables (AGENT_DEVICE_CRYPTOKI_PIN,
    AGENT_DEVICE_KEY_PIN, AGENT_<CLOUD>_DEVICE_KEY_PIN, ...)."""
    return {
        name: value
        for name, value in environ.items()
        if not (name.startswith("AGENT_") and "PIN" in name.split("_"))
    }


def exec_lean(module: str, payload: bytes, *args: str) -> NoReturn:
    """Replace this process by ``python -P -m module --payload-fd N *args``.

    ``-P``: ``python -m`` would otherwise put the current directory first on
    sys.path, and a stray ``edgeagent/`` or ``json.py`` there would run in a
    process that holds the PIN.
    """
    read_end, write_end = os.pipe()
    try:
        write_payload(write_end, payload)
        os.set_inheritable(read_end, True)
        argv = [sys.executable, "-P", "-m", module, "--payload-fd", str(read_end), *args]
        sys.stdout.flush()
        sys.stderr.flush()
        # The configuration has been read: the runtime gets the PIN through the
        # pipe only, never through an environment that /proc shows for its life.
        os.execve(sys.executable, argv, without_pins(os.environ))  # noqa: S606
    except OSError as error:
        raise ServiceError(
            f"cannot start {module} with {sys.executable}: {error}",
            "check that the agent's Python installation is complete and readable",
        ) from error
    finally:
        os.close(read_end)  # reached only when the exec failed


def write_payload(fd: int, payload: bytes) -> None:
    """Write the whole payload into the pipe without blocking, then close it.

    Nobody reads before the exec: a payload larger than the pipe's buffer
    (64 KiB, one page for a user over pipe-user-pages-soft) must fail, not hang.
    """
    try:
        os.set_blocking(fd, False)
        try:
            written = os.write(fd, payload)
        except BlockingIOError:
            written = 0
        if written != len(payload):
            raise ServiceError(
                f"the runtime's start-up data ({len(payload)} bytes) does not fit a pipe",
                "raise /proc/sys/fs/pipe-user-pages-soft, or shorten the configured paths",
            )
    finally:
        os.close(fd)


def read_payload(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read()


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set (call from the main thread)."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop

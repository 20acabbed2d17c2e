"""Hand a long-running job to a lean interpreter: same pid, what it needs through a pipe.

    exec_lean("edgeagent.cli.bridge_runtime", plan_json, "--pid-file", "/run/x.pid")
    # ... in the new program, started with --payload-fd FD:
    plan_json = read_payload(args.payload_fd)
    stop = stop_on_signals()          # set by SIGTERM / SIGINT

`agent bridge run` and `agent p11-server` read and validate the configuration
(pydantic, tomlkit: ~10 MB of resident memory), then exec a program that
never imports them. The payload may hold a PIN: a pipe keeps it out of argv
and the environment, where other users could read it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

from edgeagent.errors import ServiceError


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
        os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, fixed argv
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

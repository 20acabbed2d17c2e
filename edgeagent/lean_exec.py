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

MAX_PAYLOAD = 60 * 1024  # under the pipe's 64 KiB buffer: writing before exec cannot block


def exec_lean(module: str, payload: bytes, *args: str) -> NoReturn:
    """Replace this process by ``python -m module --payload-fd N *args``."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes; at most {MAX_PAYLOAD}")
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as pipe:
        pipe.write(payload)
    os.set_inheritable(read_end, True)
    argv = [sys.executable, "-m", module, "--payload-fd", str(read_end), *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, fixed argv


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

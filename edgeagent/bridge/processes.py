"""Processes the bridge service deals with: pid files, liveness, a starting child's output.

pid = locked_pid(path)               # the pid a held pid file names; None when free
process_alive(pid)                   # a zombie counts as gone
out, err = read_until_closed(child, timeout)
reply = last_json_line(out)          # the runtime's answer to a start
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import subprocess
import time
from pathlib import Path

from edgeagent.bridge.holder import open_pid_file


def locked_pid(path: Path) -> int | None:
    """The pid a locked pid file names (-1: unreadable), None when free (then removed)."""
    fd = open_pid_file(path)
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
        path.unlink()  # stale: its owner is gone
    return None


def read_until_closed(child: subprocess.Popen[bytes], timeout: float) -> tuple[bytes | None, bytes]:
    """Everything ``child`` writes on stdout and stderr until it closes both
    (None for stdout when that takes longer than ``timeout``)."""
    assert child.stdout is not None and child.stderr is not None
    chunks: dict[int, list[bytes]] = {child.stdout.fileno(): [], child.stderr.fileno(): []}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for pipe in (child.stdout, child.stderr):
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                err = b"".join(chunks[child.stderr.fileno()])
                child.stdout.close()
                child.stderr.close()
                return None, err
            for key, _ in selector.select(left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fileobj)
    out, err = b"".join(chunks[child.stdout.fileno()]), b"".join(chunks[child.stderr.fileno()])
    child.stdout.close()
    child.stderr.close()
    return out, err


def last_json_line(data: bytes) -> dict[str, object] | None:
    for line in reversed(data.decode(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Field 3, after the parenthesised command name (which may hold spaces).
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def spawn_for_answer(
    command: list[str], timeout: float
) -> tuple[dict[str, object] | None, str] | None:
    """Start ``command`` in a session of its own and read its answer: the last JSON
    line on stdout, or (None, what it said on stderr or its exit code). None when it
    does not let go of its pipes within ``timeout``. The child may run on (the
    bridge host does): it closes both pipes once it has answered."""
    child = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )
    out, err = read_until_closed(child, timeout)  # communicate() would wait for its end
    if out is None:
        return None
    reply = last_json_line(out)
    if reply is not None:
        return reply, ""
    text = err.decode(errors="replace").strip().removeprefix("error: ")
    return None, text or f"exit code {child.poll()}"

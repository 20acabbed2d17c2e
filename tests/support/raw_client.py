"""A signing-socket client written against docs/signing-protocol.md alone: the one raw client.

Standard library only, no edgeagent import, so that it proves the document
is enough, and so that it runs as a child under another user with the
system interpreter (a user such as ``nobody`` cannot read the test venv)::

    with connect_raw(path) as conn:                  # in the test process
        assert raw_ask(conn, {"op": "hello", "versions": [1]})["ok"] is True
    seconds = ping(path)                            # hello + ping, timed

    hello, pong = replies_as(path, NOBODY, NOBODY, {"op": "ping"})   # a child as nobody

As a child (``python3 -I -c SOURCE SOCKET REQUEST_JSON...``) it says hello,
prints the reply as one JSON line and, if the hello was accepted, sends each
request in turn and prints each reply.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NOBODY = 65534
"""uid and gid of ``nobody`` / ``nogroup`` on Debian."""
SYSTEM_PYTHON = "/usr/bin/python3"
"""For children under another user: /root, where the test venv may live, is closed to them."""
HELLO = {"op": "hello", "versions": [1]}


def connect_raw(path: Path | str, timeout: float = 5) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    conn.connect(str(path))
    return conn


def read_reply(conn: socket.socket) -> dict[str, Any]:
    """One frame's JSON; ConnectionError if the server closes part-way."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    (length,) = struct.unpack(">I", exactly(4))
    reply: dict[str, Any] = json.loads(exactly(length))
    return reply


def raw_ask(conn: socket.socket, request: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(request).encode()
    conn.sendall(struct.pack(">I", len(body)) + body)
    return read_reply(conn)


def ping(path: Path | str, timeout: float = 5) -> float:
    """Seconds for hello + ping on a fresh connection; raises if not answered."""
    started = time.monotonic()
    with connect_raw(path, timeout) as conn:
        assert raw_ask(conn, HELLO)["ok"] is True
        assert raw_ask(conn, {"op": "ping"}) == {"ok": True}
    return time.monotonic() - started


def run_as(
    path: Path, uid: int, gid: int, *requests: dict[str, Any], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """This client as uid/gid (no supplementary groups): hello, then ``requests``."""
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            SYSTEM_PYTHON,
            "-I",
            "-c",
            Path(__file__).read_text(),
            str(path),
            *(json.dumps(r) for r in requests),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def replies_as(path: Path, uid: int, gid: int, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """``run_as``'s replies, the hello's first; the client must have exited 0."""
    done = run_as(path, uid, gid, *requests)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def main(argv: list[str]) -> None:
    with connect_raw(argv[0], timeout=20) as conn:
        hello = raw_ask(conn, HELLO)
        print(json.dumps(hello), flush=True)
        if hello.get("ok"):
            for line in argv[1:]:
                print(json.dumps(raw_ask(conn, json.loads(line))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Loopback ports for test processes.

Tests never use fixed ports: every broker a test starts asks the kernel for
a free one, so tests can run next to a system mosquitto on 1883 and next to
each other.

    port = free_port()
    ... start something on 127.0.0.1:port ...
    wait_for_port("127.0.0.1", port, timeout=5.0)
"""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on `host` that nothing listens on right now.

    The port is released before returning, so another process could take
    it first; callers that start a server on it should retry on "address
    in use" (see `tests.support.mosquitto.Mosquitto.start`).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until host:port accepts TCP connections; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        if port_accepts(host, port):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout} s")
        time.sleep(0.02)

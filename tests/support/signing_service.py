"""The signing service as a user starts it: `agent -v p11-server` in a subprocess.

    server = p11_server_factory(softhsm_token, key)   # configured, not started
    server.set("p11_server.allowed_users", "65534")
    server.start()                                     # returns once it answers a ping
    gw = gateway_factory("socket", socket_path=server.socket_path)

Each service has its own config dir (module path, PIN, default key URI,
socket path) and log file; its socket lives in a short private directory
under /tmp that ``nobody`` may traverse (AF_UNIX paths stop at ~107 bytes).

Fixtures: ``socket_dir`` (that directory) and ``p11_server_factory``
(services for a token, all stopped at the end of the test).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import pytest

from edgeagent.config import set_value
from tests.support.agent_cli import AGENT
from tests.support.raw_client import ping
from tests.support.softhsm import SoftHsmToken
from tests.support.tokens import TokenKey


class P11Server:
    """`agent -v p11-server` in a subprocess, with its own config dir and log."""

    def __init__(self, config_dir: Path, socket_path: Path, log_dir: Path) -> None:
        self.config_dir = config_dir
        self.socket_path = socket_path
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def set(self, key: str, value: str) -> None:
        set_value(self.config_dir, key, value)

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"p11-server-{self.starts}.log"

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(
        self,
        *args: str,
        argv: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start without waiting; ``argv`` replaces the command (a launcher); ``env``
        adds to the environment."""
        self.starts += 1
        env = dict(os.environ, AGENT_CONFIG_DIR=str(self.config_dir), **(env or {}))
        command = argv or [str(AGENT), "-v", "p11-server", *args]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=pass_fds,
                cwd=cwd,
            )
        return self.process

    def start(
        self,
        *args: str,
        listening_on: Path | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> P11Server:
        self.spawn(*args, cwd=cwd, env=env)
        self.wait_ready(listening_on or self.socket_path)
        return self

    def wait_ready(self, path: Path, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(
                    f"agent p11-server exited {self.process.returncode}:\n{self.log_text()}"
                )
            try:
                ping(path, timeout=2)
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"agent p11-server did not answer on {path}:\n{self.log_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class P11ServerFactory(Protocol):
    """What ``p11_server_factory`` yields: a service for ``token`` serving ``key`` by default."""

    def __call__(
        self,
        token: SoftHsmToken,
        key: TokenKey,
        name: str = "p11",
        socket_name: str = "agent-p11-server.sock",
    ) -> P11Server: ...


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short path (AF_UNIX allows ~107 bytes) that `nobody` may traverse."""
    directory = Path(tempfile.mkdtemp(prefix="p11s-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def p11_server_factory(tmp_path: Path, socket_dir: Path) -> Iterator[P11ServerFactory]:
    """Make (not start) signing services; all stopped at the end of the test."""
    made: list[P11Server] = []

    def make(
        token: SoftHsmToken,
        key: TokenKey,
        name: str = "p11",
        socket_name: str = "agent-p11-server.sock",
    ) -> P11Server:
        server = P11Server(tmp_path / f"etc-{name}", socket_dir / socket_name, tmp_path / name)
        server.set("device.cryptoki.module_path", str(token.module))
        server.set("device.cryptoki.pin", token.pin)
        server.set("device.cryptoki.uri", key.uri)
        server.set("device.cryptoki.socket_path", str(server.socket_path))
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()

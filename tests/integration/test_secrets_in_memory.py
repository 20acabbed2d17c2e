"""The PIN stays out of core dumps and out of /proc/<pid>/environ, checked on the
real long-running processes: the signing service and the bridge, each given its
PIN as AGENT_DEVICE_CRYPTOKI_PIN the way a unit's Environment= would.

The core dump is attempted as an attacker would: SIGABRT to the running process
in a directory where the kernel (core_pattern "core" here) writes the file,
the process started with core dumps allowed (soft RLIMIT_CORE raised to the
hard limit, as a shell's `ulimit -c unlimited` would).

Non-dumpable on its own is seen where it shows: a service running as another
user (here `nobody`) whose /proc/<pid>/ files the kernel hands to root, so
that its own user can no longer read its environment or memory.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent.config.operations import unset
from tests.support.agent_cli import AGENT
from tests.support.gateway import Gateway
from tests.support.signing_service import P11ServerFactory
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

PIN_VARIABLE = "AGENT_DEVICE_CRYPTOKI_PIN"


def _core_limit(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line.split()[4:6]
            return soft, hard
    raise AssertionError(f"no core limit in /proc/{pid}/limits")


def _check_process(pid: int, pin: str) -> None:
    """Assert what /proc shows of ``pid``, then try to make it dump core."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(PIN_VARIABLE.encode())], environ
    assert f"{PIN_VARIABLE}={pin}".encode() not in environ
    assert "CoreDumping:\t0" in Path(f"/proc/{pid}/status").read_text()
    assert _core_limit(pid) == ("0", "0")
    os.kill(pid, signal.SIGABRT)


def _no_core_in(workdir: Path) -> None:
    cores = [p.name for p in workdir.iterdir() if p.name.startswith("core")]
    assert not cores, f"the process dumped core: {cores}"


@pytest.fixture
def cores_allowed() -> Iterator[None]:
    """Processes started during the test may dump core into their cwd."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|") or "/" in pattern:
        pytest.fail(f"this test needs a core_pattern relative to the cwd, not {pattern!r}")
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard == 0:
        pytest.fail("this test needs a hard RLIMIT_CORE above 0 (ulimit -Hc)")
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


@pytest.mark.usefixtures("cores_allowed")
def test_the_signing_service_keeps_its_pin_out_of_dumps_and_environ(
    p11_server_factory: P11ServerFactory, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    key = softhsm_token.generate_key("ec-p256", label="device")
    server = p11_server_factory(softhsm_token, key)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    server.start(cwd=workdir, env={PIN_VARIABLE: softhsm_token.pin})
    assert "serving key" in server.log_text()
    _check_process(server.pid, softhsm_token.pin)
    assert server.process is not None
    assert server.process.wait(20) == -signal.SIGABRT
    _no_core_in(workdir)


@pytest.mark.usefixtures("cores_allowed")
def test_the_bridge_keeps_its_pin_out_of_dumps_and_environ(
    gateway: Gateway, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    key = softhsm_token.generate_key("ec-p256", label="device")
    gateway.use_key(key)
    assert unset(gateway.config_dir, "device.cryptoki.pin")  # the PIN only in the environment
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    log = tmp_path / "bridge.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update(AGENT_CONFIG_DIR=str(gateway.config_dir), **{PIN_VARIABLE: softhsm_token.pin})
    with log.open("wb") as out:
        bridge = subprocess.Popen(
            [str(AGENT), "bridge", "run", "c8y"], cwd=workdir, env=env, stdout=out, stderr=out
        )
    try:
        # Connected to the cloud means the runtime has read its payload and
        # logged in with the PIN.
        deadline = time.monotonic() + 60
        while "connected" not in log.read_text().lower():
            assert bridge.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        _check_process(bridge.pid, softhsm_token.pin)
        assert bridge.wait(20) == -signal.SIGABRT
        _no_core_in(workdir)
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)

"""The signing service's systemd units: agent-p11-server.socket + .service.

Checked by `systemd-analyze verify` (no complaint about our units), kept
hardened (`systemd-analyze security --offline`), and kept in step with the
code: the socket path is device.cryptoki.socket_path's default, the mode is
the one the service itself would use, the restart policy follows the exit
code table.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.cli.exit_codes import EXIT_CODES, USAGE
from edgeagent.config.schema import CryptokiConfig
from edgeagent.p11server.listener import SOCKET_MODE

pytestmark = pytest.mark.integration

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
SOCKET_UNIT = PACKAGING / "agent-p11-server.socket"
SERVICE_UNIT = PACKAGING / "agent-p11-server.service"
SHIPPED_AGENT = "/usr/local/bin/agent"
AGENT = Path(sys.executable).with_name("agent")  # verify checks ExecStart's binary exists
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)"
)


def settings(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def installed(tmp_path: Path, extra_service: str = "") -> tuple[Path, Path]:
    """Both units in one directory, ExecStart on this run's agent."""
    service = SERVICE_UNIT.read_text()
    assert SHIPPED_AGENT in service
    service = service.replace(SHIPPED_AGENT, str(AGENT))
    if extra_service:
        service = service.replace("[Service]\n", f"[Service]\n{extra_service}\n", 1)
    (tmp_path / SERVICE_UNIT.name).write_text(service)
    shutil.copy(SOCKET_UNIT, tmp_path / SOCKET_UNIT.name)
    return tmp_path / SOCKET_UNIT.name, tmp_path / SERVICE_UNIT.name


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False
    )


def complaints(done: subprocess.CompletedProcess[str]) -> list[str]:
    # verify also reports on host units it pulls in; only ours count.
    return [line for line in (done.stdout + done.stderr).splitlines() if "agent-p11-server" in line]


@needs_systemd_analyze
def test_both_units_verify_without_complaints(tmp_path: Path) -> None:
    done = analyze("verify", *map(str, installed(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert complaints(done) == []


@needs_systemd_analyze
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    # verify exits 0 on unknown keys: the test above relies on its output.
    done = analyze("verify", *map(str, installed(tmp_path, "NoSuchKey=1\nPrivateNetwork=maybe")))
    found = "\n".join(complaints(done))
    assert "NoSuchKey" in found and "maybe" in found


@needs_systemd_analyze
def test_service_hardening_exposure_stays_low(tmp_path: Path) -> None:
    _, service = installed(tmp_path)
    done = analyze("security", "--offline=true", "--threshold=15", str(service))
    assert done.returncode == 0, done.stdout + done.stderr
    level = re.search(
        r"Overall exposure level for agent-p11-server\.service: (\d+\.\d)", done.stdout
    )
    assert level and float(level.group(1)) <= 1.5, done.stdout


def test_socket_is_the_agents_default_path_with_the_services_own_mode() -> None:
    socket = settings(SOCKET_UNIT)
    assert socket["ListenStream"] == [str(CryptokiConfig().socket_path)]
    assert socket["SocketMode"] == [f"{SOCKET_MODE:04o}"]
    assert socket["Accept"] == ["no"]  # one service for all connections
    # The bridge's group (agent-bridge@.service runs as agent:agent) may connect.
    assert socket["SocketGroup"] == ["agent"]
    assert socket["SocketUser"] == settings(SERVICE_UNIT)["User"]


def test_service_is_socket_activated_with_its_own_config_and_no_network() -> None:
    service = settings(SERVICE_UNIT)
    assert service["ExecStart"] == [
        f"{SHIPPED_AGENT} --config-dir /etc/agent-p11-server p11-server"
    ]
    assert service["Requires"] == ["agent-p11-server.socket"]
    assert service["User"] == ["agent-p11"]
    # The PIN lives in the config dir or the environment, never on the command line.
    assert "pin" not in service["ExecStart"][0].lower()
    for key, value in [
        ("PrivateNetwork", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ]:
        assert service[key] == [value], key
    # The peer check reads /proc/<pid>/status of other users' processes.
    assert "ProtectProc" not in service
    assert "SupplementaryGroups" not in service


def test_service_never_restarts_on_a_config_error() -> None:
    config_errors = {code for cls, code in EXIT_CODES if issubclass(cls, errors.ConfigError)}
    [listed] = settings(SERVICE_UNIT)["RestartPreventExitStatus"]
    assert {int(code) for code in listed.split()} == {USAGE, *config_errors}

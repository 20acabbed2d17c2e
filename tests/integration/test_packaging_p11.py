"""The signing service's systemd units: agent-p11-server.socket + .service.

Checked by `systemd-analyze verify` (no complaint about our units), kept
hardened (`systemd-analyze security --offline`), and kept in step with the
code: the socket path is device.cryptoki.socket_path's default, the mode is
the one the service itself would use, the restart policy follows the exit
code table.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.cli.exit_codes import EXIT_CODES, USAGE
from edgeagent.config.schema import CryptokiConfig
from edgeagent.p11server.listener import SOCKET_MODE
from tests.support.systemd_units import (
    PACKAGING,
    SHIPPED_AGENT,
    analyze,
    install,
    needs_systemd_analyze,
    unit_settings,
)
from tests.support.systemd_units import complaints as unit_complaints

pytestmark = pytest.mark.integration

SOCKET_UNIT = PACKAGING / "agent-p11-server.socket"
SERVICE_UNIT = PACKAGING / "agent-p11-server.service"


def installed(tmp_path: Path, extra_service: str = "") -> tuple[Path, Path]:
    """Both units in one directory, ExecStart on this run's agent."""
    service = install(SERVICE_UNIT, tmp_path, extra=extra_service)
    return install(SOCKET_UNIT, tmp_path, runs_agent=False), service


def complaints(done: subprocess.CompletedProcess[str]) -> list[str]:
    return unit_complaints(done, "agent-p11-server")


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
    socket = unit_settings(SOCKET_UNIT)
    assert socket["ListenStream"] == [str(CryptokiConfig().socket_path)]
    assert socket["SocketMode"] == [f"{SOCKET_MODE:04o}"]
    assert socket["Accept"] == ["no"]  # one service for all connections
    # The bridge's group (agent-bridge.service runs as agent:agent) may connect.
    assert socket["SocketGroup"] == ["agent"]
    assert socket["SocketUser"] == unit_settings(SERVICE_UNIT)["User"]


def test_service_is_socket_activated_with_its_own_config_and_no_network() -> None:
    service = unit_settings(SERVICE_UNIT)
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
    [listed] = unit_settings(SERVICE_UNIT)["RestartPreventExitStatus"]
    assert {int(code) for code in listed.split()} == {USAGE, *config_errors}

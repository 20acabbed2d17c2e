"""packaging/agent-cert-renew@.{service,timer}: verified by systemd, and running a real command.

The service runs `agent cert renew <cloud> --if-expiring-within 30d`; the
timer starts it daily with a randomised delay. Both must pass
`systemd-analyze verify` with no complaint (as the bridge's unit does), and
the command line must be one the agent accepts.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.support.agent_cli import run_agent
from tests.support.systemd_units import (
    PACKAGING,
    analyze,
    complaints,
    install,
    needs_systemd_analyze,
    unit_settings,
)

pytestmark = pytest.mark.integration

SERVICE = PACKAGING / "agent-cert-renew@.service"
TIMER = PACKAGING / "agent-cert-renew@.timer"


def _installed(tmp_path: Path, extra: str = "") -> tuple[Path, Path]:
    service = install(SERVICE, tmp_path, name="agent-cert-renew@c8y.service", extra=extra)
    timer = install(TIMER, tmp_path, name="agent-cert-renew@c8y.timer", runs_agent=False)
    return service, timer


@needs_systemd_analyze
def test_service_and_timer_verify_without_complaints(tmp_path: Path) -> None:
    service, timer = _installed(tmp_path)
    done = analyze("verify", str(service), str(timer))
    assert done.returncode == 0, done.stdout + done.stderr
    assert complaints(done, "agent-cert-renew@") == []


@needs_systemd_analyze
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    service, timer = _installed(tmp_path, "NoSuchKey=1\nProtectSystem=bogus")
    done = analyze("verify", str(service), str(timer))
    found = "\n".join(complaints(done, "agent-cert-renew@"))
    assert "NoSuchKey" in found and "bogus" in found


def test_the_timer_runs_daily_with_a_random_delay_and_catches_up() -> None:
    settings = unit_settings(TIMER)
    assert settings["OnCalendar"] == ["daily"]
    assert settings["RandomizedDelaySec"] == ["6h"]
    assert settings["Persistent"] == ["true"]
    assert settings["WantedBy"] == ["timers.target"]


def test_the_service_command_is_one_the_agent_accepts(tmp_path: Path) -> None:
    [command] = unit_settings(SERVICE)["ExecStart"]
    argv = shlex.split(command.replace("%i", "c8y"))
    assert argv[1:] == ["cert", "renew", "c8y", "--if-expiring-within", "30d"]
    # Parsed by the real parser: no certificate here, so it fails past parsing (not exit 2).
    done = run_agent(*argv[1:], config_dir=tmp_path / "etc-agent")
    assert done.returncode not in (0, 2), done.stderr
    assert "certificate" in done.stderr

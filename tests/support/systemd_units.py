"""The systemd units in packaging/, as `systemd-analyze` sees them installed.

    service = install(PACKAGING / "agent-p11-server.service", tmp_path)
    done = analyze("verify", str(service))
    assert complaints(done, "agent-p11-server") == []

``install`` points ExecStart at this run's `agent` (verify checks that the
binary exists); ``unit_settings`` reads every ``Key=value`` of a unit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.agent_cli import AGENT

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
SHIPPED_AGENT = "/usr/local/bin/agent"
"""Where the units expect the `agent` command."""
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)"
)


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, values in order (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def install(
    unit: Path,
    directory: Path,
    *,
    name: str | None = None,
    runs_agent: bool = True,
    extra: str = "",
) -> Path:
    """``unit`` copied into ``directory`` (as ``name``), ExecStart on this run's agent.

    ``extra`` lines go first in [Service]: a way to break the unit on purpose.
    """
    text = unit.read_text()
    if runs_agent:
        assert SHIPPED_AGENT in text
        text = text.replace(SHIPPED_AGENT, str(AGENT))
    if extra:
        text = text.replace("[Service]\n", f"[Service]\n{extra}\n", 1)
    path = directory / (name or unit.name)
    path.write_text(text)
    return path


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False
    )


def complaints(done: subprocess.CompletedProcess[str], unit_prefix: str) -> list[str]:
    """What verify said about our units (it also reports on host units it pulls in)."""
    return [line for line in (done.stdout + done.stderr).splitlines() if unit_prefix in line]


def systemd_version() -> int:
    done = analyze("--version")
    found = re.search(r"systemd (\d+)", done.stdout)
    return int(found.group(1)) if found else 0

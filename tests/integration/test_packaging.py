"""What ships next to the code: the systemd unit and the README's demo.

- `packaging/agent-bridge.service` must pass `systemd-analyze verify` with no
  warning, keep its hardening (`systemd-analyze security --offline`), and
  never restart on errors a restart cannot fix (a wrong PIN above all).
- `scripts/demo.sh` must show a message crossing the bridge both ways, in
  well under a minute after set-up. It reuses this interpreter's virtual
  environment (EDGEAGENT_VENV) and runs in its own temp dir on its own free
  ports, so it is safe next to other tests.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.cli.exit_codes import EXIT_CODES, NEVER_RETRY, USAGE
from tests.support.systemd_units import (
    PACKAGING,
    SHIPPED_AGENT,
    analyze,
    install,
    needs_systemd_analyze,
    systemd_version,
    unit_settings,
)
from tests.support.systemd_units import complaints as unit_complaints

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UNIT = PACKAGING / "agent-bridge.service"


def instance(tmp_path: Path, extra: str = "") -> Path:
    """The unit, its ExecStart on this run's agent."""
    return install(UNIT, tmp_path, extra=extra)


def complaints(done: subprocess.CompletedProcess[str]) -> list[str]:
    return unit_complaints(done, "agent-bridge")


# -- the unit -------------------------------------------------------------------


@needs_systemd_analyze
def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    done = analyze("verify", str(instance(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert complaints(done) == []


@needs_systemd_analyze
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    # verify exits 0 on unknown keys and bad values: the test above relies on
    # reading its output, so check that the output does name them.
    done = analyze("verify", str(instance(tmp_path, "NoSuchKey=1\nProtectSystem=bogus")))
    found = "\n".join(complaints(done))
    assert "NoSuchKey" in found and "bogus" in found


@needs_systemd_analyze
def test_hardening_exposure_stays_low(tmp_path: Path) -> None:
    if systemd_version() < 250:
        pytest.skip("systemd-analyze security --offline needs systemd 250 or newer")
    done = analyze("security", "--offline=true", "--threshold=20", str(instance(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Overall exposure level for agent-bridge\.service: 1\.\d OK", done.stdout)


def test_unit_runs_the_bridge_in_the_foreground_as_its_own_user() -> None:
    settings = unit_settings(UNIT)
    assert settings["ExecStart"] == [f"{SHIPPED_AGENT} bridge host"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["User"] == ["agent"]
    assert settings["MemoryDenyWriteExecute"] == ["yes"]
    # Named groups that do not exist would stop the unit from starting.
    assert "SupplementaryGroups" not in settings


def test_unit_never_restarts_after_a_wrong_pin_or_a_config_error() -> None:
    codes = dict(EXIT_CODES)
    config_errors = [code for cls, code in EXIT_CODES if issubclass(cls, errors.ConfigError)]
    must_not_retry = {
        USAGE,
        *config_errors,
        codes[errors.ModuleLoadError],
        codes[errors.PinIncorrect],  # retried, it locks the token out
        codes[errors.PinLocked],
        codes[errors.UnsupportedKeyType],
        codes[errors.InvalidKeyUri],
        codes[errors.CertificateKeyMismatch],
        codes[errors.BridgeAlreadyRunning],  # another host runs: a restart is refused too
    }
    [listed] = unit_settings(UNIT)["RestartPreventExitStatus"]
    assert {int(code) for code in listed.split()} == must_not_retry
    # The bridge host retries a cloud inside it by the same rule.
    assert must_not_retry == NEVER_RETRY
    # ... while what may come back by itself is retried.
    for transient in (errors.TokenNotFound, errors.BrokerUnreachable, errors.TlsHandshakeFailed):
        assert codes[transient] not in must_not_retry


# -- the demo -----------------------------------------------------------------------


def _venv_installed_by_setup(venv: Path) -> bool:
    """True when scripts/setup.sh will leave this venv alone (its stamp matches)."""
    stamp = venv / ".edgeagent-installed"
    want = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    return stamp.is_file() and stamp.read_text().strip() == want


def test_demo_crosses_the_bridge_both_ways() -> None:
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix):
        pytest.skip("not running in a virtual environment for the demo to reuse")
    if not _venv_installed_by_setup(venv):
        # setup.sh would pip-install into the interpreter running this test.
        pytest.skip(f"{venv} was not installed by scripts/setup.sh (run scripts/test.sh)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "SOFTHSM2_"))}
    env["EDGEAGENT_VENV"] = str(venv)

    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=110,
        check=False,
    )
    seconds = time.monotonic() - started

    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "received: s/us 200,c8y_Temperature,T,25" in done.stdout
    assert "received: c8y/s/ds 510,demo-device" in done.stdout
    assert "key access: module (" in done.stdout
    # The URI p11tool printed is the one the agent was configured with.
    printed = re.search(r"URL: (pkcs11:\S+)", done.stdout)
    assert printed and f"key URI used:   {printed.group(1)}" in done.stdout
    assert "never extractable" in done.stdout
    assert seconds < 60, f"the demo took {seconds:.0f} s"

"""Without systemd, the running bridge checks its certificate daily (issue 14 part 4).

Real parts: SoftHSM token, the stand-in cloud broker with Cumulocity's token
responder, the stand-in EST server, the bridge started detached by
`agent connect c8y` (no systemd here). The check's first delay and interval
are shortened through the runtime's environment variables.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from edgeagent.bridge.cert_check import FIRST_DELAY_VARIABLE, INTERVAL_VARIABLE
from integration.standin import CumulocityResponder
from integration.standin.est import EstStandin
from tests.support.agent_cli import run_agent
from tests.support.gateway import Gateway
from tests.support.softhsm import SoftHsmToken

QUICK = {FIRST_DELAY_VARIABLE: "0.5", INTERVAL_VARIABLE: "3600"}


@pytest.fixture
def c8y(gateway: Gateway, est: EstStandin, monkeypatch: pytest.MonkeyPatch) -> CumulocityResponder:
    """The gateway's own stand-in Cumulocity, whose tokens the EST server accepts.

    Only one responder answers ``s/uat``: a second one would race it.
    """
    responder = gateway.c8y_responder
    assert responder is not None
    issue = responder.token

    def token(lifetime: int = 3600) -> str:
        issued = issue(lifetime)
        est.tokens.add(issued)
        return issued

    monkeypatch.setattr(responder, "token", token)
    return responder


def _connect(
    gateway: Gateway, token: SoftHsmToken, est: EstStandin, **cert: object
) -> tuple[Path, bytes]:
    """Connect with a fresh key; the certificate's path and its bytes before the bridge ran."""
    gateway.set("c8y.http", est.address)
    gateway.new_device_key(token, **cert)  # type: ignore[arg-type]
    cert_path = Path(gateway.agent("config", "get", "device.cert_path").stdout.strip())
    before = cert_path.read_bytes()
    done = run_agent("connect", "c8y", config_dir=gateway.config_dir, env=QUICK)
    assert done.returncode == 0, done.stdout + done.stderr
    return cert_path, before


def _log(gateway: Gateway) -> Path:
    return Path(gateway.agent("config", "get", "logs.path").stdout.strip()) / "bridge-c8y.log"


def _until(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_the_bridge_renews_a_certificate_that_ends_within_30_days_by_itself(
    gateway: Gateway, softhsm_token: SoftHsmToken, est: EstStandin, c8y: CumulocityResponder
) -> None:
    ends = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
    cert_path, before = _connect(gateway, softhsm_token, est, not_after=ends)
    log = _log(gateway)

    _until(lambda: "the c8y bridge was reconnected with it" in log.read_text(), "the renewal")

    assert cert_path.read_bytes() != before
    renewed = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert renewed == est.issued[0]
    assert renewed.not_valid_after_utc > ends + datetime.timedelta(days=300)
    assert [e.path for e in est.exchanges] == ["/.well-known/est/simplereenroll"]
    up, down = gateway.exchange(b"200,c8y_Temperature,T,21", b"510,device-001")
    assert up.payload == b"200,c8y_Temperature,T,21" and down.payload == b"510,device-001"
    text = log.read_text()
    assert text.count("bridge for Cumulocity starting") == 2  # reconnected by the renewal
    assert text.count("running `agent cert renew c8y --if-expiring-within 30d`") == 1
    # The restarted bridge knows a check just ran (the stamp): its next one is
    # the interval away (here 3600 s ± 5 %), not a first delay of seconds.
    last = [line for line in text.splitlines() if "certificate check for c8y: next in" in line][-1]
    found = re.search(r"next in ([\d.]+) (h|min)$", last)
    assert found is not None, last
    minutes = float(found[1]) * (60 if found[2] == "h" else 1)
    assert minutes > 50, last


def test_with_a_long_lived_certificate_the_daily_check_does_nothing(
    gateway: Gateway, softhsm_token: SoftHsmToken, est: EstStandin, c8y: CumulocityResponder
) -> None:
    ends = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)
    cert_path, before = _connect(gateway, softhsm_token, est, not_after=ends)
    pid = gateway.bridge_pid()
    log = _log(gateway)

    _until(lambda: "certificate check for c8y: done" in log.read_text(), "the check")

    text = log.read_text()
    assert "running `agent cert renew c8y --if-expiring-within 30d`" in text
    assert "not renewed: the certificate is valid until " in text
    assert est.exchanges == [] and cert_path.read_bytes() == before
    assert gateway.bridge_pid() == pid

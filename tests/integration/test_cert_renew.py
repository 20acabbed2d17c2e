"""`agent cert renew` by EST: through the running bridge (c8y) or by client certificate (generic).

Real parts: SoftHSM token, the stand-in cloud broker with Cumulocity's token
responder (``s/uat`` -> ``71,<JWT>``), the stand-in EST server, the bridge
running as `agent connect` starts it. What each test holds: the new
certificate is tried before it is trusted, the switch happens only then, and
the device never stays offline because of a renewal.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from edgeagent import errors
from edgeagent.bridge.status_file import read_status, status_path
from integration.standin import BrokerAddress, CumulocityResponder
from integration.standin.est import CERTS_ONLY, EstStandin
from tests.support.agent_cli import exit_code
from tests.support.gateway import Gateway
from tests.support.pki import TestPki
from tests.support.softhsm import SoftHsmToken

DEVICE = "device-001"


class TokenIssuingResponder(CumulocityResponder):
    """Cumulocity's responder whose tokens the EST server accepts (the tenant's shared trust)."""

    def __init__(self, address: BrokerAddress, est: EstStandin) -> None:
        super().__init__(address)
        self.est = est

    def token(self, lifetime: int = 3600) -> str:
        issued = super().token(lifetime)
        self.est.tokens.add(issued)
        return issued


@pytest.fixture
def c8y(gateway: Gateway, est: EstStandin) -> Iterator[TokenIssuingResponder]:
    """The stand-in Cumulocity, issuing tokens the EST server accepts.

    It takes the place of the one `new_gateway` starts: one token issuer per
    tenant, answering `agent connect`'s round trip and the renewal alike.
    """
    if gateway.c8y_responder is not None:
        gateway.c8y_responder.stop()
    with TokenIssuingResponder(gateway.cloud_address("c8y-standin"), est) as responder:
        gateway.c8y_responder = responder
        yield responder


def _connected(gateway: Gateway, token: SoftHsmToken, est: EstStandin, **cert: object) -> Path:
    gateway.set("c8y.http", est.address)
    gateway.new_device_key(token, **cert)  # type: ignore[arg-type]
    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(gateway.agent("config", "get", "device.cert_path").stdout.strip())


def _bridge_started_at(gateway: Gateway) -> float:
    """When the running c8y bridge started, from its status file."""
    status = read_status(status_path(gateway.run_dir, "c8y"))
    assert status is not None and status.stopped_at is None
    return status.started_at


def _keys(gateway: Gateway, token: SoftHsmToken) -> str:
    """The token's keys as `hsm list-keys` prints them (other tests' tokens left out)."""
    return gateway.agent("hsm", "list-keys", "--token-uri", token.uri).stdout


def _still_bridging(gateway: Gateway) -> None:
    up, down = gateway.exchange(b"200,c8y_Temperature,T,21", b"510,device-001")
    assert up.payload == b"200,c8y_Temperature,T,21"
    assert down.payload == b"510,device-001"


def test_renew_c8y_with_the_same_key_through_the_running_bridge(
    gateway: Gateway, softhsm_token: SoftHsmToken, est: EstStandin, c8y: TokenIssuingResponder
) -> None:
    cert_path = _connected(gateway, softhsm_token, est)
    old = x509.load_pem_x509_certificate(cert_path.read_bytes())
    old_start = _bridge_started_at(gateway)
    time.sleep(1.1)  # started_at is to the second
    asked_before = len(c8y.exchanges)  # connect's own round trip asked for one too

    done = gateway.agent("cert", "renew", "c8y")

    assert done.returncode == 0, done.stderr
    assert [(e.path, e.auth, e.content_type, e.status, e.answer_type) for e in est.exchanges] == [
        ("/.well-known/est/simplereenroll", "bearer", "application/pkcs10", 200, CERTS_ONLY)
    ]
    # The renewal's bearer token, then the reconnect's round trip (the cloud answers).
    assert [x.topic for x in c8y.exchanges[asked_before:]] == ["s/uat", "s/uat"]
    new = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert new == est.issued[0] and new.serial_number != old.serial_number
    assert new.public_key() == old.public_key()
    assert "tried with the cloud first" in done.stderr
    # Reconnected, so it uses the new certificate: restarted inside the bridge
    # host (the process and its pid stay; N3), so a new bridge, not a new pid.
    assert _bridge_started_at(gateway) > old_start
    _still_bridging(gateway)


def test_renew_c8y_with_a_new_key_switches_the_key_and_deletes_the_old_one(
    gateway: Gateway, softhsm_token: SoftHsmToken, est: EstStandin, c8y: TokenIssuingResponder
) -> None:
    cert_path = _connected(gateway, softhsm_token, est)
    old_uri = gateway.agent("config", "get", "device.key_uri").stdout.strip()

    done = gateway.agent("cert", "renew", "c8y", "--new-key")

    assert done.returncode == 0, done.stderr
    new_uri = gateway.agent("config", "get", "device.key_uri").stdout.strip()
    assert new_uri != old_uri and "object=device-key-" in new_uri
    shown = gateway.agent("cert", "show", "c8y")
    assert shown.returncode == 0 and "key matches: yes" in shown.stdout
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()) == est.issued[0]
    keys = _keys(gateway, softhsm_token)
    assert "object=device-key;" not in keys  # the old key is gone from the token
    assert "deleted the old key" in done.stderr
    _still_bridging(gateway)


def test_keep_old_key_keeps_it(
    gateway: Gateway, softhsm_token: SoftHsmToken, est: EstStandin, c8y: TokenIssuingResponder
) -> None:
    _connected(gateway, softhsm_token, est)
    done = gateway.agent("cert", "renew", "c8y", "--new-key", "--keep-old-key")
    assert done.returncode == 0, done.stderr
    keys = _keys(gateway, softhsm_token)
    assert "object=device-key;" in keys and "object=device-key-" in keys


def test_a_certificate_the_cloud_refuses_leaves_the_device_connected_with_the_old_one(
    gateway: Gateway,
    softhsm_token: SoftHsmToken,
    pki: TestPki,
    c8y: TokenIssuingResponder,
    tmp_path: Path,
) -> None:
    # An EST server whose CA the cloud does not trust: its certificate is refused.
    server = pki.ca.issue_server(["localhost"], ["127.0.0.1"])
    with EstStandin(
        pki.other_ca.cert_path, pki.other_ca.key_path, server.cert_path, server.key_path
    ) as wrong_ca:
        c8y.est = wrong_ca
        cert_path = _connected(gateway, softhsm_token, wrong_ca)
        before = cert_path.read_bytes()
        old_uri = gateway.agent("config", "get", "device.key_uri").stdout.strip()
        old_pid = gateway.bridge_pid()

        done = gateway.agent("cert", "renew", "c8y", "--new-key")

    # The trial's own raw CONNECT sees the refusal as the cloud closing on it.
    assert done.returncode == exit_code(errors.DeviceCertificateRefused), done.stderr
    assert "nothing was switched" in done.stderr
    assert len(wrong_ca.issued) == 1  # it was issued, tried, and not trusted
    assert cert_path.read_bytes() == before
    assert gateway.agent("config", "get", "device.key_uri").stdout.strip() == old_uri
    assert "object=device-key-" not in _keys(gateway, softhsm_token)  # new key gone
    assert gateway.bridge_pid() == old_pid
    _still_bridging(gateway)


def test_generic_est_authenticates_with_the_current_certificate(
    gateway: Gateway, softhsm_token: SoftHsmToken, est: EstStandin
) -> None:
    gateway.new_device_key(softhsm_token)
    cert_path = Path(gateway.agent("config", "get", "device.cert_path").stdout.strip())
    old = x509.load_pem_x509_certificate(cert_path.read_bytes())

    done = gateway.agent(
        "cert", "renew", "c8y", "--est-url", f"https://{est.address}/.well-known/est"
    )

    assert done.returncode == 0, done.stderr
    assert [(e.auth, e.status) for e in est.exchanges] == [("client-certificate", 200)]
    new = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert new == est.issued[0] and new.serial_number != old.serial_number
    assert "bridge was reconnected" not in done.stderr  # none was running


def test_generic_est_without_a_trusted_client_certificate_is_refused(
    gateway: Gateway, softhsm_token: SoftHsmToken, pki: TestPki
) -> None:
    server = pki.ca.issue_server(["localhost"], ["127.0.0.1"])
    # The EST server trusts only other_ca for client certificates: ours is not enough.
    with EstStandin(
        pki.ca.cert_path,
        pki.ca.key_path,
        server.cert_path,
        server.key_path,
        client_ca=pki.other_ca.cert_path,
    ) as est:
        gateway.new_device_key(softhsm_token)
        cert_path = Path(gateway.agent("config", "get", "device.cert_path").stdout.strip())
        before = cert_path.read_bytes()
        done = gateway.agent("cert", "renew", "--est-url", f"https://{est.address}")
    assert done.returncode != 0
    assert cert_path.read_bytes() == before
    assert est.issued == []


def test_if_expiring_within_both_ways(
    gateway: Gateway, softhsm_token: SoftHsmToken, est: EstStandin
) -> None:
    ends = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
    gateway.new_device_key(softhsm_token, not_after=ends)
    cert_path = Path(gateway.agent("config", "get", "device.cert_path").stdout.strip())
    before = cert_path.read_bytes()
    url = f"https://{est.address}"

    later = gateway.agent("cert", "renew", "--est-url", url, "--if-expiring-within", "1d")
    assert later.returncode == 0, later.stderr
    assert later.stdout.startswith("not renewed: the certificate is valid until ")
    assert len(later.stdout.strip().splitlines()) == 1
    assert est.exchanges == [] and cert_path.read_bytes() == before

    now = gateway.agent("cert", "renew", "--est-url", url, "--if-expiring-within", "30d")
    assert now.returncode == 0, now.stderr
    renewed = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert renewed == est.issued[0]
    assert renewed.not_valid_after_utc > ends + datetime.timedelta(days=300)

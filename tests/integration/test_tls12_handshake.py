"""TLS 1.2 handshakes in-process against real servers: every suite and group we
offer, a server without extended master secret, a server that asks to renegotiate.

The stand-in cloud is mosquitto with its OpenSSL capped at TLS 1.2
(`TlsListener.tls12_only`, OPENSSL_CONF); the suite or group under test is
the only one the server allows, so a handshake that completes negotiated it.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from edgeagent import errors
from edgeagent.bridge.probe import probe
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.file_signer import FileSigner
from edgeagent.signing.module_signer import open_module_signer
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors
from tests.support.mosquitto import MosquittoFactory, TlsListener
from tests.support.pki import TestPki
from tests.support.ports import LOOPBACK, free_port
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsmToken

pytestmark = pytest.mark.integration

# OpenSSL's name -> the IANA name our client reports.
SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}
# OpenSSL's group name -> ours.
GROUPS = {"X25519": "x25519", "P-256": "secp256r1", "P-384": "secp384r1"}

# OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (Python's ssl has no name for it).
OP_NO_EXTENDED_MASTER_SECRET = 0x1


def _context(
    pki: TestPki, softhsm_token: SoftHsmToken, spec: str = "ec-p256"
) -> Iterator[TlsClientContext]:
    key = softhsm_token.generate_key(spec)  # type: ignore[arg-type]
    cert = pki.ca.issue_client(key.public_key, "device-1")
    with open_module_signer(SOFTHSM_MODULE, key.uri, softhsm_token.pin) as signer:
        yield TlsClientContext(signer, cert.read_text(), load_trust_anchors(pki.ca.cert_path))


@pytest.mark.parametrize("openssl_name", list(SUITES))
def test_each_tls12_suite_we_offer_carries_mqtt(
    openssl_name: str,
    softhsm_token: SoftHsmToken,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
) -> None:
    server_key = "ec-p256" if "ECDSA" in openssl_name else "rsa-2048"
    server = pki.ca.issue_server(["localhost"], key_type=server_key)  # type: ignore[arg-type]
    listener = TlsListener.tls12_only(
        server, client_ca=pki.ca.cert_path, cipher_string=openssl_name
    )
    broker = mosquitto_factory(plain=False, tls=listener, name="cloud12")
    for tls in _context(pki, softhsm_token):
        result = probe(Endpoint("c8y", "localhost", broker.tls_port, "device-1", tls=tls))
        assert result.connack_seconds > 0
        assert tls.last_handshake.version == "TLS 1.2"
        assert tls.last_handshake.cipher_suite == SUITES[openssl_name]
        assert tls.last_handshake.group == "x25519"


@pytest.mark.parametrize("openssl_group", list(GROUPS))
def test_each_tls12_group_we_offer(
    openssl_group: str,
    softhsm_token: SoftHsmToken,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
) -> None:
    # RSA certificates: in TLS 1.2 the groups also bound EC certificates' curves.
    server = pki.ca.issue_server(["localhost"], key_type="rsa-2048")
    listener = TlsListener.tls12_only(server, client_ca=pki.ca.cert_path, groups=openssl_group)
    broker = mosquitto_factory(plain=False, tls=listener, name="cloud12")
    for tls in _context(pki, softhsm_token, "rsa-2048"):
        probe(Endpoint("c8y", "localhost", broker.tls_port, "device-1", tls=tls))
        assert tls.last_handshake.version == "TLS 1.2"
        assert tls.last_handshake.group == GROUPS[openssl_group]


def test_a_tls12_server_we_share_no_suite_with_is_refused(
    softhsm_token: SoftHsmToken, mosquitto_factory: MosquittoFactory, pki: TestPki
) -> None:
    """CBC and RSA key transport exist on the server only: no handshake."""
    listener = TlsListener.tls12_only(
        pki.localhost_server,
        client_ca=pki.ca.cert_path,
        cipher_string="ECDHE-ECDSA-AES128-SHA256:AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256",
    )
    broker = mosquitto_factory(plain=False, tls=listener, name="cloud12")
    for tls in _context(pki, softhsm_token):
        with pytest.raises(errors.TlsHandshakeFailed) as caught:
            probe(Endpoint("c8y", "localhost", broker.tls_port, "device-1", tls=tls))
        assert "handshake_failure" in caught.value.cause


def test_a_server_accepting_no_signature_our_key_makes_is_refused_before_we_sign(
    softhsm_token: SoftHsmToken, mosquitto_factory: MosquittoFactory, pki: TestPki
) -> None:
    """An ECDSA-only CertificateRequest and an RSA device key: our error, nothing signed.

    (tlslite 0.8.2 itself refuses any CertificateRequest without an RSA
    scheme, and signs with its own first choice when nothing matches.)
    """
    listener = TlsListener.tls12_only(
        pki.localhost_server,
        client_ca=pki.ca.cert_path,
        client_signature_algorithms="ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384",
    )
    broker = mosquitto_factory(plain=False, tls=listener, name="cloud12")
    for tls in _context(pki, softhsm_token, "rsa-2048"):
        with pytest.raises(errors.UnsupportedKeyType) as caught:
            probe(Endpoint("c8y", "localhost", broker.tls_port, "device-1", tls=tls))
        assert "ecdsa_secp256r1_sha256" in caught.value.cause
        assert "can make none of them" in caught.value.cause
    for tls in _context(pki, softhsm_token, "ec-p256"):  # the control: an EC key is accepted
        probe(Endpoint("c8y", "localhost", broker.tls_port, "device-1", tls=tls))
        assert tls.last_handshake.version == "TLS 1.2"


# -- extended master secret: a Python ssl server with and without it ---------------------


def _serve_once(context: ssl.SSLContext, listener: socket.socket, outcome: list[str]) -> None:
    conn, _ = listener.accept()
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            outcome.append(str(tls.version()))
            tls.recv(1)
    except (ssl.SSLError, OSError) as error:
        outcome.append(f"error: {error}")


@pytest.mark.parametrize("ems", [True, False])
def test_a_tls12_server_without_extended_master_secret_is_refused(ems: bool, pki: TestPki) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.localhost_server.cert_path, pki.localhost_server.key_path)
    context.load_verify_locations(pki.ca.cert_path)
    context.verify_mode = ssl.CERT_REQUIRED
    if not ems:
        context.options |= OP_NO_EXTENDED_MASTER_SECRET
    assert bool(context.options & OP_NO_EXTENDED_MASTER_SECRET) is not ems

    client = pki.client("device-ems")
    tls = TlsClientContext(
        FileSigner(client.key_path),
        client.cert_path.read_text(),
        load_trust_anchors(pki.ca.cert_path),
    )
    outcome: list[str] = []
    with socket.create_server((LOOPBACK, 0)) as listener:
        server = threading.Thread(target=_serve_once, args=(context, listener, outcome))
        server.start()
        sock = socket.create_connection(listener.getsockname(), timeout=10)
        wrapped = tls.wrap_socket(sock, server_hostname="localhost")
        try:
            if ems:
                wrapped.do_handshake()
                assert tls.last_handshake.version == "TLS 1.2"
            else:
                with pytest.raises(errors.TlsHandshakeFailed) as caught:
                    wrapped.do_handshake()
                assert "extended master secret" in caught.value.cause
        finally:
            wrapped.close()
            server.join(10)
    assert outcome and (outcome[0] == "TLSv1.2") is ems, outcome


# -- renegotiation ------------------------------------------------------------------------


def test_a_hello_request_ends_the_connection(pki: TestPki) -> None:
    """openssl s_server's `R` command sends a HelloRequest; we never renegotiate."""
    port = free_port()
    server = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-accept",
            f"{LOOPBACK}:{port}",
            "-tls1_2",
            "-cert",
            str(pki.localhost_server.cert_path),
            "-key",
            str(pki.localhost_server.key_path),
            "-CAfile",
            str(pki.ca.cert_path),
            "-Verify",
            "1",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert server.stdin is not None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.create_connection((LOOPBACK, port), timeout=10)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "openssl s_server did not start"
                time.sleep(0.05)
        client = pki.client("device-reneg")
        tls = TlsClientContext(
            FileSigner(client.key_path),
            client.cert_path.read_text(),
            load_trust_anchors(pki.ca.cert_path),
        )
        wrapped = tls.wrap_socket(sock, server_hostname="localhost")
        wrapped.do_handshake()
        assert tls.last_handshake.version == "TLS 1.2"
        # Data still flows before the request: the control for the refusal below.
        server.stdin.write(b"before\n")
        server.stdin.flush()
        assert wrapped.recv(100) == b"before\n"
        server.stdin.write(b"R\n")
        server.stdin.flush()
        with pytest.raises(ConnectionError, match="renegotiate"):
            while wrapped.recv(100):
                pass
        wrapped.close()
    finally:
        server.kill()
        server.wait(5)

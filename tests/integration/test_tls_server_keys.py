"""Weak keys in the server's chain, and what an impostor is called, against real
TLS servers (Python's ssl, i.e. OpenSSL, on loopback) over TLS 1.3 and TLS 1.2.

OpenSSL is told `@SECLEVEL=0` so that it will serve an RSA-1024 certificate at
all: the refusal under test is ours, not the server's.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.signing.file_signer import FileSigner
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors
from tests.support.pki import ServerCredentials, TestCa, TestPki
from tests.support.ports import LOOPBACK

pytestmark = pytest.mark.integration

VERSIONS = {"1.3": ssl.TLSVersion.TLSv1_3, "1.2": ssl.TLSVersion.TLSv1_2}


def _serve_once(context: ssl.SSLContext, listener: socket.socket) -> None:
    conn, _ = listener.accept()
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)
    except (ssl.SSLError, OSError):
        pass  # the client refused us: what most of these tests expect


def _handshake(
    pki: TestPki, server: ServerCredentials, trusted_ca: Path, version: str
) -> TlsClientContext:
    """Run one handshake of our client against a server with `server`'s certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = context.maximum_version = VERSIONS[version]
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(server.cert_path, server.key_path)
    client = pki.client("device-keys")
    tls = TlsClientContext(
        FileSigner(client.key_path),
        client.cert_path.read_text(),
        load_trust_anchors(trusted_ca),
        min_version=version,
    )
    with socket.create_server((LOOPBACK, 0)) as listener:
        thread = threading.Thread(target=_serve_once, args=(context, listener), daemon=True)
        thread.start()
        sock = socket.create_connection(listener.getsockname(), timeout=10)
        wrapped = tls.wrap_socket(sock, server_hostname="localhost")
        try:
            wrapped.do_handshake()
        finally:
            wrapped.close()
            thread.join(10)
    return tls


@pytest.mark.parametrize("version", list(VERSIONS))
def test_an_rsa_2048_chain_is_accepted(version: str, pki: TestPki, tmp_path: Path) -> None:
    """The control: the same servers with big enough keys complete the handshake."""
    ca = TestCa("RSA-2048 Root", tmp_path, key_type="rsa-2048")
    server = ca.issue_server(["localhost"], key_type="rsa-2048")
    tls = _handshake(pki, server, ca.cert_path, version)
    assert tls.last_handshake.version == f"TLS {version}"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_an_rsa_1024_server_certificate_is_refused(version: str, pki: TestPki) -> None:
    server = pki.ca.issue_server(["localhost"], key_type="rsa-1024")
    with pytest.raises(errors.ServerKeyTooWeak) as caught:
        _handshake(pki, server, pki.ca.cert_path, version)
    assert "the server's certificate (CN=localhost)" in caught.value.cause
    assert "RSA 1024 bits" in caught.value.cause
    assert "re-issue" in caught.value.fix


@pytest.mark.parametrize("version", list(VERSIONS))
def test_an_rsa_1024_ca_in_the_trust_store_is_refused(
    version: str, pki: TestPki, tmp_path: Path
) -> None:
    """The server never sends the root: the weak key is found in our own store."""
    weak_ca = TestCa("Weak RSA-1024 Root", tmp_path, key_type="rsa-1024")
    server = weak_ca.issue_server(["localhost"], key_type="rsa-2048")
    with pytest.raises(errors.ServerKeyTooWeak) as caught:
        _handshake(pki, server, weak_ca.cert_path, version)
    assert "the CA certificate" in caught.value.cause
    assert "CN=Weak RSA-1024 Root" in caught.value.cause
    assert "RSA 1024 bits" in caught.value.cause


@pytest.mark.parametrize("version", list(VERSIONS))
def test_an_expired_impostor_is_untrusted_not_a_clock_problem(
    version: str, pki: TestPki, tmp_path: Path
) -> None:
    """An expired certificate from a CA we do not trust: the clock is not the problem."""
    impostor_ca = TestCa("Impostor Root", tmp_path)
    now = datetime.datetime.now(datetime.UTC)
    server = impostor_ca.issue_server(
        ["localhost"],
        not_before=now - datetime.timedelta(days=60),
        not_after=now - datetime.timedelta(days=30),
    )
    with pytest.raises(errors.ServerCertificateUntrusted) as caught:
        _handshake(pki, server, pki.ca.cert_path, version)
    assert "is not signed by a CA in" in caught.value.cause
    assert "clock" not in caught.value.fix


@pytest.mark.parametrize("version", list(VERSIONS))
def test_an_expired_certificate_from_our_ca_is_still_a_clock_problem(
    version: str, pki: TestPki
) -> None:
    """The control for the impostor case: trusted but expired reads as expired."""
    server = pki.server(expired=True)
    with pytest.raises(errors.ServerCertificateExpired) as caught:
        _handshake(pki, server, pki.ca.cert_path, version)
    assert "clock" in caught.value.fix

"""The hellos of TLS 1.2 beside 1.3: what we offer, and ServerHellos we must refuse.

A fake server on a socket pair reads our real ClientHello and answers with a
crafted ServerHello (RFC 8446 downgrade sentinel, a version below the
minimum, no extended master secret...). The control case, the same answer
without the flaw, gets past the ServerHello (and then fails only because the
fake server hangs up): so each refusal is the check under test, nothing else.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from tlslite.constants import (
    AlertDescription,
    CipherSuite,
    ContentType,
    ExtensionType,
    GroupName,
    HandshakeType,
    SignatureScheme,
)
from tlslite.extensions import (
    HRRKeyShareExtension,
    RenegotiationInfoExtension,
    SrvSupportedVersionsExtension,
    TLSExtension,
)
from tlslite.messages import ClientHello, ServerHello
from tlslite.tlsconnection import TLS_1_3_HRR
from tlslite.utils.codec import Parser

from edgeagent import errors
from edgeagent.signing.file_signer import FileSigner
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.tls12 import TLS12_SUITES
from edgeagent.tls.verify import load_trust_anchors
from tests.support.pki import TestPki

SENTINEL_12 = bytes.fromhex("444f574e47524401")
SENTINEL_11 = bytes.fromhex("444f574e47524400")
ECDSA_AES128 = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256


def _exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _record(sock: socket.socket) -> tuple[int, bytes]:
    kind, _, length = struct.unpack(">BHH", _exactly(sock, 5))
    return kind, _exactly(sock, length)


@dataclass
class Exchange:
    client_hello: ClientHello | None = None
    alert: int | None = None  # the fatal alert the client sent back, if any
    errors: list[BaseException] = field(default_factory=list)


def run_against(
    pki: TestPki, answer: Callable[[ClientHello], ServerHello], min_version: str = "1.2"
) -> tuple[Exchange, BaseException]:
    """Handshake with a fake server that answers ``answer(client_hello)`` then hangs up."""
    client = pki.client("hello-test")
    tls = TlsClientContext(
        FileSigner(client.key_path),
        client.cert_path.read_text(),
        load_trust_anchors(pki.ca.cert_path),
        min_version=min_version,
    )
    ours, theirs = socket.socketpair()
    exchange = Exchange()

    def serve() -> None:
        try:
            kind, body = _record(theirs)
            assert kind == ContentType.handshake and body[0] == HandshakeType.client_hello
            exchange.client_hello = ClientHello().parse(Parser(bytearray(body[1:])))
            hello = answer(exchange.client_hello).write()
            theirs.sendall(struct.pack(">BHH", ContentType.handshake, 0x0303, len(hello)) + hello)
            theirs.shutdown(socket.SHUT_WR)  # nothing more: a client that goes on sees EOF
            theirs.settimeout(5)
            try:
                kind, body = _record(theirs)
                if kind == ContentType.alert:
                    exchange.alert = body[1]
            except (EOFError, OSError):
                pass
        except BaseException as error:  # surfaced by the test
            exchange.errors.append(error)
        finally:
            theirs.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ours.settimeout(10)
    wrapped = tls.wrap_socket(ours, server_hostname="localhost")
    with pytest.raises(errors.AgentError) as caught:
        wrapped.do_handshake()
    wrapped.close()
    thread.join(10)
    assert not exchange.errors, exchange.errors
    return exchange, caught.value


def tls12_hello(
    random_tail: bytes = b"\x00" * 8,
    *,
    version: tuple[int, int] = (3, 3),
    suite: int = ECDSA_AES128,
    ems: bool = True,
    renegotiation: bytes = b"",
) -> Callable[[ClientHello], ServerHello]:
    def answer(client_hello: ClientHello) -> ServerHello:
        extensions: list[TLSExtension] = [
            RenegotiationInfoExtension().create(bytearray(renegotiation))
        ]
        if ems:
            extensions.append(
                TLSExtension(extType=ExtensionType.extended_master_secret).create(bytearray())
            )
        random = bytearray(b"\x11" * 24 + random_tail)
        return ServerHello().create(version, random, bytearray(32), suite, extensions=extensions)

    return answer


# -- what the ClientHello offers ---------------------------------------------------------


def test_the_client_hello_offers_tls13_and_modern_tls12_only(pki: TestPki) -> None:
    exchange, _ = run_against(pki, tls12_hello())
    hello = exchange.client_hello
    assert hello is not None
    versions = hello.getExtension(ExtensionType.supported_versions).versions
    assert versions == [(3, 4), (3, 3)]
    assert hello.client_version == (3, 3)
    tls13 = set(CipherSuite.tls13Suites)
    offered = set(hello.cipher_suites)
    assert offered - tls13 == set(TLS12_SUITES) | {CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV}
    groups = hello.getExtension(ExtensionType.supported_groups).groups
    assert groups == [
        GroupName.x25519,
        GroupName.secp256r1,
        GroupName.secp384r1,
        GroupName.secp521r1,
    ]
    schemes = set(hello.getExtension(ExtensionType.signature_algorithms).sigalgs)
    assert SignatureScheme.rsa_pkcs1_sha256 in schemes  # TLS 1.2 servers may need it
    assert SignatureScheme.rsa_pss_rsae_sha256 in schemes
    for weak in (
        SignatureScheme.rsa_pkcs1_sha1,
        SignatureScheme.ecdsa_sha1,
        SignatureScheme.rsa_pkcs1_sha224,
        SignatureScheme.ecdsa_sha224,
        SignatureScheme.dsa_sha256,
    ):
        assert weak not in schemes
    assert hello.getExtension(ExtensionType.extended_master_secret) is not None
    assert hello.compression_methods == [0]
    assert hello.getExtension(ExtensionType.encrypt_then_mac) is None
    assert hello.getExtension(ExtensionType.heartbeat) is None


def test_a_plain_tls12_server_hello_is_accepted(pki: TestPki) -> None:
    """The control for the refusals below: the handshake goes on, then the server hangs up."""
    exchange, error = run_against(pki, tls12_hello())
    assert type(error) is errors.TlsHandshakeFailed
    assert "closed the connection" in error.cause
    assert exchange.alert is None


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentinel", "version"),
    [(SENTINEL_12, (3, 3)), (SENTINEL_11, (3, 3)), (SENTINEL_11, (3, 2)), (SENTINEL_11, (3, 1))],
)
def test_the_downgrade_sentinel_is_refused_with_its_own_error(
    pki: TestPki, sentinel: bytes, version: tuple[int, int]
) -> None:
    # A TLS 1.1/1.0 answer too: tlslite must not refuse it as "too old" before we look.
    exchange, error = run_against(pki, tls12_hello(sentinel, version=version))
    assert isinstance(error, errors.TlsDowngradeDetected)
    assert "RFC 8446" in error.cause and error.fix
    assert exchange.alert == AlertDescription.illegal_parameter


def test_a_tls12_answer_is_refused_when_the_minimum_is_13(pki: TestPki) -> None:
    exchange, error = run_against(pki, tls12_hello(), min_version="1.3")
    assert isinstance(error, errors.TlsVersionRefused)
    assert "wants TLS 1.2" in error.cause and "minimum is TLS 1.3" in error.cause
    assert "<cloud>.tls.min_version 1.2" in error.fix
    assert exchange.alert == AlertDescription.protocol_version


@pytest.mark.parametrize(("version", "name"), [((3, 2), "TLS 1.1"), ((3, 1), "TLS 1.0")])
def test_tls11_is_refused_whatever_the_minimum(
    pki: TestPki, version: tuple[int, int], name: str
) -> None:
    exchange, error = run_against(pki, tls12_hello(version=version))
    assert isinstance(error, errors.TlsVersionRefused)
    assert f"wants {name}" in error.cause
    assert exchange.alert == AlertDescription.protocol_version


def test_a_tls12_server_without_extended_master_secret_is_refused(pki: TestPki) -> None:
    exchange, error = run_against(pki, tls12_hello(ems=False))
    assert type(error) is errors.TlsHandshakeFailed
    assert "extended master secret" in error.cause
    assert exchange.alert == AlertDescription.handshake_failure


def test_a_non_empty_renegotiation_info_is_refused(pki: TestPki) -> None:
    exchange, error = run_against(pki, tls12_hello(renegotiation=b"\x01" * 12))
    assert "renegotiation_info" in error.cause
    assert exchange.alert == AlertDescription.handshake_failure


def test_a_cipher_suite_we_did_not_offer_is_refused(pki: TestPki) -> None:
    cbc = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
    exchange, error = run_against(pki, tls12_hello(suite=cbc))
    assert isinstance(error, errors.TlsHandshakeFailed)
    assert "closed the connection" not in error.cause
    assert exchange.alert in (
        AlertDescription.illegal_parameter,
        AlertDescription.handshake_failure,
    )


def test_a_tls12_answer_after_a_hello_retry_request_is_refused(pki: TestPki) -> None:
    """RFC 8446 4.1.4: after a HelloRetryRequest (TLS 1.3) the ServerHello must stay 1.3."""
    client = pki.client("hrr-test")
    tls = TlsClientContext(
        FileSigner(client.key_path),
        client.cert_path.read_text(),
        load_trust_anchors(pki.ca.cert_path),
    )
    ours, theirs = socket.socketpair()
    seen: list[tuple[int, bytes]] = []
    problems: list[BaseException] = []

    def record(message: ServerHello) -> bytes:
        body = message.write()
        return struct.pack(">BHH", ContentType.handshake, 0x0303, len(body)) + body

    def serve() -> None:
        try:
            _, body = _record(theirs)
            hello = ClientHello().parse(Parser(bytearray(body[1:])))
            retry = ServerHello().create(
                (3, 3),
                TLS_1_3_HRR,
                hello.session_id,
                ECDSA_AES128,
                extensions=[
                    SrvSupportedVersionsExtension().create((3, 4)),
                    HRRKeyShareExtension().create(GroupName.secp256r1),
                ],
            )
            theirs.sendall(record(retry))
            while True:  # the client's compatibility CCS, then its second ClientHello
                kind, body = _record(theirs)
                if kind == ContentType.handshake:
                    break
            theirs.sendall(record(tls12_hello()(hello)))
            theirs.shutdown(socket.SHUT_WR)
            theirs.settimeout(5)
            seen.append(_record(theirs))
        except (EOFError, OSError):
            pass
        except BaseException as error:
            problems.append(error)
        finally:
            theirs.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ours.settimeout(10)
    wrapped = tls.wrap_socket(ours, server_hostname="localhost")
    with pytest.raises(errors.TlsHandshakeFailed) as caught:
        wrapped.do_handshake()
    wrapped.close()
    thread.join(10)
    assert not problems, problems
    assert "retry" in caught.value.cause and "TLS 1.2" in caught.value.cause
    # What the client sent next was the alert, not a handshake message.
    assert [(kind, body[1]) for kind, body in seen] == [
        (ContentType.alert, AlertDescription.illegal_parameter)
    ]

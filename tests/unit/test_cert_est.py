"""The EST client's pure parts: three answer encodings, the back-off, secrets out of reprs."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from edgeagent.certs.enrol import enroll_until_registered
from edgeagent.certs.est import (
    BasicAuth,
    BearerAuth,
    EstAnswer,
    EstPending,
    EstServer,
    csr_body,
    leaf_first,
    parse_certs_only,
)
from edgeagent.errors import EnrolmentRefused, EnrolmentTimedOut


def _cert(cn: str) -> tuple[x509.Certificate, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cert, spki


def test_certs_only_is_read_as_base64_der_raw_der_and_pem() -> None:
    ca, _ = _cert("ca")
    leaf, _ = _cert("device-1")
    der = pkcs7.serialize_certificates([ca, leaf], serialization.Encoding.DER)
    pem = pkcs7.serialize_certificates([ca, leaf], serialization.Encoding.PEM)
    for body in (base64.encodebytes(der), der, pem):
        assert parse_certs_only(body) == [ca, leaf]


def test_an_answer_that_is_no_pkcs7_is_refused() -> None:
    with pytest.raises(EnrolmentRefused, match="not a PKCS#7"):
        parse_certs_only(b"<html>login</html>")


def test_the_certificate_for_our_key_comes_first_and_one_must_be_there() -> None:
    ca, _ = _cert("ca")
    leaf, ours = _cert("device-1")
    assert leaf_first([ca, leaf], ours) == [leaf, ca]
    with pytest.raises(EnrolmentRefused, match="no certificate for the device key"):
        leaf_first([ca], ours)


def test_the_csr_body_is_base64_der_in_lines() -> None:
    body = csr_body(bytes(range(256)))
    lines = body.split(b"\r\n")
    assert all(len(line) <= 64 for line in lines)
    assert base64.b64decode(b"".join(lines)) == bytes(range(256))


def test_secrets_never_show_in_a_repr() -> None:
    assert "hunter2" not in repr(BasicAuth("device-1", "hunter2"))
    assert "hunter2" not in repr(BearerAuth("hunter2"))
    assert BasicAuth("d", "p").header() == "Basic " + base64.b64encode(b"d:p").decode()


class _Server(EstServer):
    """Answers "not yet" ``pending`` times, then a certificate."""

    def __init__(self, pending: int, retry_after: float | None = None) -> None:
        super().__init__("est.example", 443, Path("/nonexistent"))
        object.__setattr__(self, "left", pending)
        object.__setattr__(self, "retry_after", retry_after)

    def enroll(self, operation: str, csr_der: bytes, auth: object) -> EstAnswer:
        left: int = self.left  # type: ignore[attr-defined]
        if left > 0:
            object.__setattr__(self, "left", left - 1)
            raise EstPending(401, self.retry_after, "not registered")  # type: ignore[attr-defined]
        return EstAnswer([], 200, "application/pkcs7-mime")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_back_off_doubles_up_to_a_minute() -> None:
    clock = _Clock()
    answer, attempts = enroll_until_registered(
        _Server(7),
        "simpleenroll",
        b"csr",
        None,
        retry_every=5,
        max_wait=3600,
        notify=lambda _: None,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    assert answer.status == 200
    assert attempts == 8
    assert clock.waits == [5, 10, 20, 40, 60, 60, 60]


def test_retry_after_is_honoured() -> None:
    clock = _Clock()
    enroll_until_registered(
        _Server(2, retry_after=3),
        "simpleenroll",
        b"csr",
        None,
        retry_every=5,
        max_wait=3600,
        notify=lambda _: None,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    assert clock.waits == [3, 3]


def test_the_wait_is_bounded_and_the_error_says_what_to_do() -> None:
    clock = _Clock()
    with pytest.raises(EnrolmentTimedOut, match="HTTP 401") as raised:
        enroll_until_registered(
            _Server(100),
            "simpleenroll",
            b"csr",
            None,
            retry_every=5,
            max_wait=30,
            notify=lambda _: None,
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
    assert "register the device" in raised.value.fix
    assert sum(clock.waits) == 30

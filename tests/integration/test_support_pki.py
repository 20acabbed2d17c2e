"""The test PKI issues certificates a strict verifier accepts, and only where it should.

`cryptography.x509.verification` is what the agent uses to check the cloud's
chain, so certificates that pass here are realistic; the negative cases
prove the wrong-CA and expired helpers really produce bad certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tests.support.pki import TestCa, TestPki, load_cert

pytestmark = pytest.mark.integration


def _server_verify(ca: TestCa, leaf: x509.Certificate, name: x509.GeneralName) -> None:
    store = Store([ca.cert])
    verifier = PolicyBuilder().store(store).build_server_verifier(name)  # type: ignore[arg-type]
    verifier.verify(leaf, [])


def _client_verify(ca: TestCa, leaf: x509.Certificate) -> None:
    PolicyBuilder().store(Store([ca.cert])).build_client_verifier().verify(leaf, [])


def test_ca_is_a_ca(pki: TestPki) -> None:
    cert = pki.ca.cert
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.subject == cert.issuer
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert pki.ca.cert.subject != pki.other_ca.cert.subject


def test_server_cert_verifies_strictly_for_its_names(pki: TestPki) -> None:
    leaf = load_cert(pki.localhost_server.cert_path)
    _server_verify(pki.ca, leaf, x509.DNSName("localhost"))
    _server_verify(pki.ca, leaf, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert leaf.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)


def test_server_cert_refused_for_another_name(pki: TestPki) -> None:
    leaf = load_cert(pki.localhost_server.cert_path)
    with pytest.raises(VerificationError):
        _server_verify(pki.ca, leaf, x509.DNSName("cloud.example.com"))


def test_server_cert_refused_by_other_ca(pki: TestPki) -> None:
    leaf = load_cert(pki.server(issuer=pki.other_ca).cert_path)
    _server_verify(pki.other_ca, leaf, x509.DNSName("localhost"))
    with pytest.raises(VerificationError):
        _server_verify(pki.ca, leaf, x509.DNSName("localhost"))


def test_expired_server_cert_is_refused(pki: TestPki) -> None:
    leaf = load_cert(pki.server(expired=True).cert_path)
    assert leaf.not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    with pytest.raises(VerificationError):
        _server_verify(pki.ca, leaf, x509.DNSName("localhost"))


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"])
def test_client_cert_with_key_file(pki: TestPki, key_type: str) -> None:
    creds = pki.ca.issue_client_with_key(f"device-{key_type}", key_type)  # type: ignore[arg-type]
    leaf = load_cert(creds.cert_path)
    _client_verify(pki.ca, leaf)
    with pytest.raises(VerificationError):
        _client_verify(pki.other_ca, leaf)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == creds.common_name
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert stat.S_IMODE(creds.key_path.stat().st_mode) == 0o600
    assert creds.ca_cert_path == pki.ca.cert_path


def test_client_cert_for_a_key_held_elsewhere(pki: TestPki) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = pki.ca.issue_client(private.public_key(), "token-device", dns_san=True)
    leaf = load_cert(path)
    assert leaf.public_key() == private.public_key()
    _client_verify(pki.ca, leaf)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["token-device"]


def test_each_issue_writes_new_files(pki: TestPki) -> None:
    first, second = pki.client("same"), pki.client("same")
    assert first.cert_path != second.cert_path
    assert first.key_path != second.key_path
    assert first.cert_path.read_bytes() != second.cert_path.read_bytes()


def test_not_after_before_not_before_is_an_error(pki: TestPki) -> None:
    now = datetime.datetime.now(datetime.UTC)
    with pytest.raises(ValueError, match="not_after"):
        pki.ca.issue_server(["x"], not_before=now, not_after=now - datetime.timedelta(1))


def test_client_cn_that_is_no_dns_name_gets_no_san(pki: TestPki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = load_cert(pki.ca.issue_client(key.public_key(), "device 1 (test)"))
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert leaf.subject.rfc4514_string() == "CN=device 1 (test)"

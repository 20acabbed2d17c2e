"""A small test PKI: certificate authorities that issue server and client certificates.

Everything is written as PEM files into a directory, because that is what
mosquitto, Python's `ssl` and the agent's configuration all read.

    ca = TestCa("Test Root CA", tmp_path)
    server = ca.issue_server(["localhost"], ["127.0.0.1"])   # server.cert_path, server.key_path
    client = ca.issue_client_with_key("device-1")             # file key
    cert = ca.issue_client(token_public_key, "device-2")      # key lives on a token

The certificates carry the extensions a strict verifier wants
(`cryptography.x509.verification`): basicConstraints, keyUsage,
extendedKeyUsage, subjectAltName, subject/authority key identifiers.

The pytest fixture `pki` (session scope) gives a `TestPki` with the
trusted `ca`, an unrelated `other_ca` (for wrong-CA cases) and shortcuts.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# "ec-p224" and "rsa-1024" only for tests of the weak-key refusal.
KeyType = Literal["ec-p224", "ec-p256", "ec-p384", "rsa-1024", "rsa-2048", "rsa-3072"]

# Leave room for clock differences between this process and the verifier.
_BACKDATE = datetime.timedelta(hours=1)
_DEFAULT_LIFETIME = datetime.timedelta(days=30)
_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def generate_key(key_type: KeyType = "ec-p256") -> CertificateIssuerPrivateKeyTypes:
    """A fresh private key of the given type."""
    if key_type == "ec-p224":
        return ec.generate_private_key(ec.SECP224R1())
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa-1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if key_type == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"unknown key type {key_type!r}")


def write_key(key: CertificateIssuerPrivateKeyTypes, path: Path) -> Path:
    """Write an unencrypted PKCS#8 PEM key readable only by its owner."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return path


def write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _key_usage(
    *, digital_signature: bool, key_encipherment: bool = False, cert_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


@dataclass(frozen=True)
class ServerCredentials:
    """A server certificate and its key file, plus the CA that issued it."""

    cert_path: Path
    key_path: Path
    ca_cert_path: Path


@dataclass(frozen=True)
class ClientCredentials:
    """A client certificate and its private key file, plus the CA that issued it."""

    cert_path: Path
    key_path: Path
    ca_cert_path: Path
    common_name: str


class TestCa:
    """A self-signed root CA (EC P-256 unless `key_type` says otherwise) that writes
    what it issues into `directory`."""

    __test__ = False  # not a pytest test class despite the name

    _serial_names = itertools.count(1)

    def __init__(
        self,
        name: str,
        directory: Path,
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        key_type: KeyType = "ec-p256",
    ) -> None:
        self.name = name
        self.directory = directory / _slug(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = generate_key(key_type)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgeagent tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _BACKDATE)
            .not_valid_after(not_after or now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                _key_usage(digital_signature=True, cert_sign=True),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = write_cert(self.cert, self.directory / "ca.pem")
        self.key_path = write_key(self.key, self.directory / "ca.key")

    def __repr__(self) -> str:
        return f"TestCa({self.name!r}, {self.cert_path})"

    def _unique(self, stem: str) -> str:
        return f"{_slug(stem)}-{next(self._serial_names)}"

    def _issue(
        self,
        public_key: CertificateIssuerPublicKeyTypes,
        subject: x509.Name,
        *,
        sans: Sequence[x509.GeneralName],
        eku: x509.ObjectIdentifier,
        not_before: datetime.datetime | None,
        not_after: datetime.datetime | None,
    ) -> x509.Certificate:
        now = _now()
        start = not_before or now - _BACKDATE
        end = not_after or now + _DEFAULT_LIFETIME
        if end <= start:
            raise ValueError(f"not_after {end} is not after not_before {start}")
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(
                    digital_signature=True,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_server(
        self,
        hostnames: Sequence[str],
        ips: Sequence[str] = (),
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        key_type: KeyType = "ec-p256",
    ) -> ServerCredentials:
        """A TLS server certificate (serverAuth) for `hostnames` and `ips`, with a new key.

        Pass `not_after` in the past for an expired certificate (see also
        `issue_expired_server`).
        """
        if not hostnames and not ips:
            raise ValueError("a server certificate needs at least one hostname or IP")
        key = generate_key(key_type)
        sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        cn = hostnames[0] if hostnames else ips[0]
        cert = self._issue(
            key.public_key(),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]),
            sans=sans,
            eku=ExtendedKeyUsageOID.SERVER_AUTH,
            not_before=not_before,
            not_after=not_after,
        )
        stem = self._unique(f"server-{cn}")
        return ServerCredentials(
            cert_path=write_cert(cert, self.directory / f"{stem}.pem"),
            key_path=write_key(key, self.directory / f"{stem}.key"),
            ca_cert_path=self.cert_path,
        )

    def issue_expired_server(
        self, hostnames: Sequence[str], ips: Sequence[str] = ()
    ) -> ServerCredentials:
        """A server certificate that expired yesterday (valid for one day before that)."""
        now = _now()
        return self.issue_server(
            hostnames,
            ips,
            not_before=now - datetime.timedelta(days=2),
            not_after=now - datetime.timedelta(days=1),
        )

    def issue_client(
        self,
        public_key: CertificateIssuerPublicKeyTypes,
        common_name: str,
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        dns_san: bool | None = None,
        path: Path | None = None,
    ) -> Path:
        """A TLS client certificate (clientAuth) for a key whose private half is elsewhere.

        `public_key` is a `cryptography` public key object, e.g. read from a
        PKCS#11 token. The subject is just CN=`common_name` (what Cumulocity
        and mosquitto's `use_identity_as_username` read). The CN is also put
        in a subjectAltName dNSName (a strict client verifier wants a SAN)
        unless `dns_san` is False; by default only when the CN is a valid
        DNS name. Returns the PEM path.
        """
        if dns_san is None:
            dns_san = _DNS_NAME.fullmatch(common_name) is not None
        sans: list[x509.GeneralName] = [x509.DNSName(common_name)] if dns_san else []
        cert = self._issue(
            public_key,
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
            sans=sans,
            eku=ExtendedKeyUsageOID.CLIENT_AUTH,
            not_before=not_before,
            not_after=not_after,
        )
        target = path or self.directory / f"{self._unique(f'client-{common_name}')}.pem"
        return write_cert(cert, target)

    def sign_csr(self, csr_pem: bytes, *, path: Path | None = None) -> Path:
        """Issue a client certificate for a PKCS#10 CSR (PEM); its CN and key, our extensions.

        The CSR's own signature is checked first, as a real CA does.
        """
        request = x509.load_pem_x509_csr(csr_pem)
        if not request.is_signature_valid:
            raise ValueError("the CSR's signature does not verify")
        names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(names[0].value)
        public_key = request.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        return self.issue_client(public_key, common_name, path=path)

    def issue_client_with_key(
        self,
        common_name: str,
        key_type: KeyType = "ec-p256",
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> ClientCredentials:
        """A client certificate with a new private key written to a file next to it."""
        key = generate_key(key_type)
        cert_path = self.issue_client(
            key.public_key(), common_name, not_before=not_before, not_after=not_after
        )
        return ClientCredentials(
            cert_path=cert_path,
            key_path=write_key(key, cert_path.with_suffix(".key")),
            ca_cert_path=self.cert_path,
            common_name=common_name,
        )


class TestPki:
    """What the `pki` fixture yields: two unrelated CAs in one directory.

    `ca` is the CA the stand-in cloud trusts and the agent is told to trust;
    `other_ca` is a stranger, for "issued by the wrong CA" cases.
    """

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = TestCa("edgeagent Test Root CA", directory)
        self.other_ca = TestCa("Unrelated Root CA", directory)
        self._localhost: ServerCredentials | None = None

    @property
    def localhost_server(self) -> ServerCredentials:
        """A server certificate from `ca` for `localhost` and 127.0.0.1 (made once)."""
        if self._localhost is None:
            self._localhost = self.ca.issue_server(["localhost"], ["127.0.0.1"])
        return self._localhost

    def server(self, *, issuer: TestCa | None = None, expired: bool = False) -> ServerCredentials:
        """A new server certificate for `localhost` + 127.0.0.1, by default from `ca`."""
        ca = issuer or self.ca
        if expired:
            return ca.issue_expired_server(["localhost"], ["127.0.0.1"])
        return ca.issue_server(["localhost"], ["127.0.0.1"])

    def client(
        self, common_name: str = "test-device", key_type: KeyType = "ec-p256"
    ) -> ClientCredentials:
        """A new client certificate + key file from `ca`."""
        return self.ca.issue_client_with_key(common_name, key_type)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestPki]:
    """Session-wide test PKI (`TestPki`): `.ca`, `.other_ca`, `.localhost_server`, `.client()`."""
    yield TestPki(tmp_path_factory.mktemp("pki"))

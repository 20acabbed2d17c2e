"""Verify the cloud's certificate chain and hostname (tlslite does neither).

Uses ``cryptography.x509.verification`` (the WebPKI server policy). When
verification fails we work out *why*, so the user reads "expired" or "issued
for another host" instead of one opaque error.
"""

from __future__ import annotations

import datetime
import ipaddress
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from edgeagent.errors import (
    CertificateUnreadable,
    ServerCertificateExpired,
    ServerCertificateUntrusted,
    ServerHostnameMismatch,
)


def load_trust_anchors(root_cert_path: Path) -> list[x509.Certificate]:
    """Every CA certificate in a PEM file, or in the PEM files of a directory."""
    files = (
        sorted(p for p in root_cert_path.iterdir() if p.is_file())
        if (root_cert_path.is_dir())
        else [root_cert_path]
    )
    anchors: dict[bytes, x509.Certificate] = {}
    for file in files:
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise CertificateUnreadable(
                f"CA certificate file {file} does not exist",
                "set c8y.root_cert_path to a CA file or a directory of CA files",
            ) from None
        except PermissionError as error:
            raise CertificateUnreadable(
                f"cannot read CA certificate file {file}: permission denied",
                f"make {file} readable by the user running the agent",
            ) from error
        if b"-----BEGIN CERTIFICATE-----" not in data:
            continue  # directories like /etc/ssl/certs hold other files too
        try:
            with warnings.catch_warnings():
                # System stores carry old roots cryptography warns about
                # (negative serials); they are the user's trust, not ours.
                warnings.simplefilter("ignore")
                certs = x509.load_pem_x509_certificates(data)
            for cert in certs:
                anchors[cert.fingerprint(SHA256())] = cert
        except ValueError:
            continue
    if not anchors:
        raise CertificateUnreadable(
            f"no CA certificates found in {root_cert_path}",
            "set c8y.root_cert_path to the PEM file (or directory) of the CA that "
            "issued the cloud's server certificate",
        )
    return list(anchors.values())


def _subject_alt_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def _hostname_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, tail = host.partition(".")
        return bool(head) and tail == pattern[2:]
    return pattern == host


def verify_server_chain(
    chain: list[x509.Certificate],
    host: str,
    store: Store,
    now: datetime.datetime | None = None,
) -> None:
    """Raise one of our TLS errors unless ``chain`` is valid for ``host``.

    ``chain[0]`` is the server's certificate, the rest are intermediates as
    the server sent them. ``store`` is built once per TLS context: a system
    store of ~150 roots costs ~0.5 ms to build, every handshake otherwise.
    """
    if not chain:
        raise ServerCertificateUntrusted("the server sent no certificate")
    now = now or datetime.datetime.now(datetime.UTC)
    subject: x509.DNSName | x509.IPAddress
    try:
        subject = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    verifier = PolicyBuilder().store(store).time(now).build_server_verifier(subject)
    try:
        verifier.verify(chain[0], chain[1:])
    except VerificationError as error:
        raise _diagnose(chain, host, now, str(error)) from error


def _diagnose(
    chain: list[x509.Certificate], host: str, now: datetime.datetime, detail: str
) -> Exception:
    for cert in chain:
        if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
            which = "the server's certificate" if cert is chain[0] else "an intermediate CA"
            return ServerCertificateExpired(
                f"{which} ({cert.subject.rfc4514_string()}) is valid only from "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; now is {now:%Y-%m-%d %H:%M} UTC",
                "check this device's clock; if it is right, the cloud's certificate "
                "must be renewed",
            )
    names = _subject_alt_names(chain[0])
    if not any(_hostname_matches(name, host) for name in names):
        return ServerHostnameMismatch(
            f"the server's certificate is for {', '.join(names) or 'no host name'}, "
            f"not for {host!r}",
            "check c8y.url: it must be the host name the cloud's certificate was issued for",
        )
    issuer = chain[-1].issuer.rfc4514_string()
    return ServerCertificateUntrusted(
        f"the server's certificate chain (issued by {issuer}) does not lead to a "
        f"trusted CA ({detail})",
        "set c8y.root_cert_path to the CA that issued the cloud's certificate; if it is "
        "already right, someone may be intercepting the connection",
    )

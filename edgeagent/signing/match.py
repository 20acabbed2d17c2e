"""Does the device certificate belong to the signer's key?

    check_matches_certificate(signer, cert)    # raises CertificateKeyMismatch

Checked before connecting: a mismatch otherwise shows up as the cloud
dropping the TLS handshake with no useful reason.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgeagent.errors import CertificateKeyMismatch
from edgeagent.signing.signer import Signer

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_matches_certificate(signer: Signer, cert: x509.Certificate) -> None:
    """Raise CertificateKeyMismatch unless ``cert``'s public key is ``signer``'s."""
    cert_key = cert.public_key().public_bytes(*_SPKI)
    signer_key = signer.public_key().public_bytes(*_SPKI)
    if cert_key != signer_key:
        subject = cert.subject.rfc4514_string()
        raise CertificateKeyMismatch(
            f"the device certificate ({subject}, serial {cert.serial_number:x}) "
            f"is not for the key at {signer.location}",
            "point device.cert_path at the certificate issued for this key, "
            "or device.key_uri at the key the certificate was issued for",
        )

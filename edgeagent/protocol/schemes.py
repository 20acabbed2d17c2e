"""The signature vocabulary shared by every Signer and by the signing socket.

Defined here, at the bottom, because the wire protocol is the widest
contract: the server, the socket client and every Signer speak it.
"""

from __future__ import annotations

from typing import Literal

HashName = Literal["sha256", "sha384", "sha512"]
"""Hashes of the signature schemes we make (TLS 1.3 and TLS 1.2 alike)."""

Padding = Literal["ecdsa", "pss", "pkcs1v15"]
"""How the digest is turned into a signature.

``ecdsa``: ECDSA, result DER-encoded (``SEQUENCE {r, s}``).
``pss``: RSASSA-PSS, MGF1 with the same hash, salt length = digest length.
``pkcs1v15``: RSASSA-PKCS1-v1_5 over a DigestInfo built on the host
(certificates, CSRs, and a TLS 1.2 CertificateVerify for servers without
PSS; TLS 1.3 forbids it in CertificateVerify).
"""

DIGEST_SIZES: dict[HashName, int] = {"sha256": 32, "sha384": 48, "sha512": 64}

# Signature schemes by their RFC 8446 section 4.2.3 names (TLS 1.2 uses them
# too), PKCS#1 v1.5 included. For ECDSA the key fixes the curve, so the
# curve-less names are accepted too.
SCHEMES: dict[str, tuple[HashName, Padding]] = {
    "ecdsa_secp256r1_sha256": ("sha256", "ecdsa"),
    "ecdsa_secp384r1_sha384": ("sha384", "ecdsa"),
    "ecdsa_secp521r1_sha512": ("sha512", "ecdsa"),
    "ecdsa_sha256": ("sha256", "ecdsa"),
    "ecdsa_sha384": ("sha384", "ecdsa"),
    "ecdsa_sha512": ("sha512", "ecdsa"),
    "rsa_pss_rsae_sha256": ("sha256", "pss"),
    "rsa_pss_rsae_sha384": ("sha384", "pss"),
    "rsa_pss_rsae_sha512": ("sha512", "pss"),
    "rsa_pkcs1_sha256": ("sha256", "pkcs1v15"),
    "rsa_pkcs1_sha384": ("sha384", "pkcs1v15"),
    "rsa_pkcs1_sha512": ("sha512", "pkcs1v15"),
}


def scheme_name(hash_name: HashName, padding: Padding) -> str:
    """The curve-less scheme name for a hash and a padding."""
    if padding == "ecdsa":
        return f"ecdsa_{hash_name}"
    if padding == "pss":
        return f"rsa_pss_rsae_{hash_name}"
    return f"rsa_pkcs1_{hash_name}"

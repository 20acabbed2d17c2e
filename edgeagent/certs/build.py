"""CSRs and self-signed certificates whose signature the token makes.

    csr_der = build_csr(signer, "device-001")
    cert_der = build_self_signed(signer, "device-001", days=365)

``cryptography``'s builders only sign with keys they hold, so the
to-be-signed structures are built with asn1crypto, hashed here, and signed
by the Signer (module, socket or file). The signatureAlgorithm written is
the one the Signer was asked for, never a default (thin-edge PR #3737
declared PKCS#1 v1.5 for a PSS signature, and the cloud refused it):

- EC: ECDSA with the curve's hash (P-256 SHA-256, P-384 SHA-384, P-521 SHA-512);
- RSA: sha256WithRSAEncryption (PKCS#1 v1.5) by default; with ``rsa_pss``,
  RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32 bytes, trailer 1 (RFC 4055).

Each result is checked with ``cryptography`` before it is returned, so a
signature that does not verify never reaches a file.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from dataclasses import dataclass

from asn1crypto import algos, csr, keys
from asn1crypto import x509 as ax
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeagent.errors import UnsupportedKeyType
from edgeagent.signing.signer import HashName, Padding, PublicKey, Signer

_EC_HASH: dict[int, HashName] = {256: "sha256", 384: "sha384", 521: "sha512"}
BACKDATE = datetime.timedelta(hours=1)
"""Self-signed certificates start this long ago: clocks on devices drift."""


@dataclass(frozen=True)
class SignatureScheme:
    name: str
    """As openssl prints it: ecdsa-with-SHA256, sha256WithRSAEncryption, rsassaPss."""
    algorithm: algos.SignedDigestAlgorithm
    hash_name: HashName
    padding: Padding


def signature_scheme(public: PublicKey, rsa_pss: bool = False) -> SignatureScheme:
    """How this key signs a certificate or CSR, and how that is declared."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        hash_name = _EC_HASH.get(public.curve.key_size)
        if hash_name is None:
            raise UnsupportedKeyType(f"EC curve {public.curve.name}")
        algorithm = algos.SignedDigestAlgorithm({"algorithm": f"{hash_name}_ecdsa"})
        return SignatureScheme(f"ecdsa-with-{hash_name.upper()}", algorithm, hash_name, "ecdsa")
    if not isinstance(public, rsa.RSAPublicKey):
        raise UnsupportedKeyType(f"a {type(public).__name__} cannot sign certificates here")
    if rsa_pss:
        params = algos.RSASSAPSSParams(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {
                    "algorithm": "mgf1",
                    "parameters": {"algorithm": "sha256"},
                },
                "salt_length": 32,
                "trailer_field": "trailer_field_bc",
            }
        )
        algorithm = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params})
        return SignatureScheme(
            "rsassaPss (SHA-256, MGF1-SHA-256, salt 32)", algorithm, "sha256", "pss"
        )
    algorithm = algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
    return SignatureScheme("sha256WithRSAEncryption", algorithm, "sha256", "pkcs1v15")


def _spki(public: PublicKey) -> keys.PublicKeyInfo:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return keys.PublicKeyInfo.load(der)


def _sign(signer: Signer, tbs: bytes, scheme: SignatureScheme) -> bytes:
    digest = hashlib.new(scheme.hash_name, tbs).digest()
    return signer.sign_digest(digest, scheme.hash_name, scheme.padding)


def _subject(common_name: str) -> ax.Name:
    return ax.Name.build({"common_name": common_name})


def build_csr(signer: Signer, common_name: str, rsa_pss: bool = False) -> bytes:
    """A PKCS#10 CSR (DER) with subject CN=``common_name``, signed by ``signer``."""
    public = signer.public_key()
    scheme = signature_scheme(public, rsa_pss)
    info = csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": _subject(common_name),
            "subject_pk_info": _spki(public),
            "attributes": [],
        }
    )
    request = csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": scheme.algorithm,
            "signature": _sign(signer, info.dump(), scheme),
        }
    )
    der: bytes = request.dump()
    if not x509.load_der_x509_csr(der).is_signature_valid:
        raise UnsupportedKeyType(
            f"the CSR's signature made with {signer.location} does not verify",
            "the token signed with another key or scheme than it reports; check its key",
        )
    return der


def _time(moment: datetime.datetime) -> ax.Time:
    # RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
    if moment.year < 2050:
        return ax.Time({"utc_time": moment})
    return ax.Time({"general_time": moment})


def build_self_signed(
    signer: Signer,
    common_name: str,
    days: int = 365,
    rsa_pss: bool = False,
    now: datetime.datetime | None = None,
) -> bytes:
    """A self-signed client certificate (DER) for the signer's key, CN=``common_name``."""
    public = signer.public_key()
    scheme = signature_scheme(public, rsa_pss)
    spki = _spki(public)
    start = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0) - BACKDATE
    end = start + BACKDATE + datetime.timedelta(days=days)
    ski = hashlib.sha1(spki["public_key"].contents[1:]).digest()  # noqa: S324 (RFC 5280 4.2.1.2)
    name = _subject(common_name)
    usage = {"digital_signature"} | ({"key_encipherment"} if scheme.padding != "ecdsa" else set())
    extensions = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}},
        {"extn_id": "key_usage", "critical": True, "extn_value": usage},
        {"extn_id": "extended_key_usage", "critical": False, "extn_value": ["client_auth"]},
        {"extn_id": "key_identifier", "critical": False, "extn_value": ski},
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": ski},
        },
    ]
    tbs = ax.TbsCertificate(
        {
            "version": "v3",
            "serial_number": int.from_bytes(secrets.token_bytes(20), "big") >> 1,
            "signature": scheme.algorithm,
            "issuer": name,
            "validity": {"not_before": _time(start), "not_after": _time(end)},
            "subject": name,
            "subject_public_key_info": spki,
            "extensions": extensions,
        }
    )
    certificate = ax.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": scheme.algorithm,
            "signature_value": _sign(signer, tbs.dump(), scheme),
        }
    )
    der: bytes = certificate.dump()
    loaded = x509.load_der_x509_certificate(der)
    try:
        loaded.verify_directly_issued_by(loaded)
    except (InvalidSignature, ValueError, TypeError) as error:
        raise UnsupportedKeyType(
            f"the certificate's signature made with {signer.location} does not verify",
            "the token signed with another key or scheme than it reports; check its key",
        ) from error
    return der


def pem(der: bytes, kind: str) -> bytes:
    """PEM armour: kind 'CERTIFICATE' or 'CERTIFICATE REQUEST'."""
    from asn1crypto import pem as asn1_pem

    armored: bytes = asn1_pem.armor(kind, der)
    return armored

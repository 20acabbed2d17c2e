"""TLS 1.2 signatures: which scheme our key signs with, which server signatures we accept."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from tlslite.constants import CipherSuite, SignatureScheme

from edgeagent.tls.tls12 import certificate_verify_scheme, server_signature_refusal

S = SignatureScheme
P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
RSA = rsa.generate_private_key(65537, 2048)
ECDSA_SUITE = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
RSA_SUITE = CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
SIGNED = b"client random + server random + ECDH parameters"


def test_an_ec_key_signs_with_its_curves_hash_when_listed_else_another_sha2() -> None:
    both = [S.ecdsa_secp256r1_sha256, S.ecdsa_secp384r1_sha384]
    assert certificate_verify_scheme(P384.public_key(), both) == (
        S.ecdsa_secp384r1_sha384,
        "sha384",
        "ecdsa",
    )
    assert certificate_verify_scheme(P256.public_key(), both)[1] == "sha256"  # type: ignore[index]
    only_256 = [S.ecdsa_secp256r1_sha256, S.rsa_pss_rsae_sha256]
    assert certificate_verify_scheme(P384.public_key(), only_256)[1] == "sha256"  # type: ignore[index]


def test_an_rsa_key_prefers_pss_and_falls_back_to_pkcs1() -> None:
    key = RSA.public_key()
    pss_and_pkcs1 = [S.rsa_pkcs1_sha256, S.rsa_pss_rsae_sha256, S.ecdsa_secp256r1_sha256]
    assert certificate_verify_scheme(key, pss_and_pkcs1) == (
        S.rsa_pss_rsae_sha256,
        "sha256",
        "pss",
    )
    assert certificate_verify_scheme(key, [S.rsa_pkcs1_sha256]) == (
        S.rsa_pkcs1_sha256,
        "sha256",
        "pkcs1v15",
    )
    assert certificate_verify_scheme(key, [S.rsa_pkcs1_sha384])[2] == "pkcs1v15"  # type: ignore[index]


def test_nothing_the_key_can_make_means_no_scheme() -> None:
    """tlslite signed with its own first choice here; we refuse."""
    assert certificate_verify_scheme(RSA.public_key(), [S.ecdsa_secp256r1_sha256]) is None
    assert certificate_verify_scheme(P256.public_key(), [S.rsa_pss_rsae_sha256]) is None
    assert certificate_verify_scheme(RSA.public_key(), [S.rsa_pkcs1_sha1]) is None
    assert certificate_verify_scheme(P256.public_key(), [S.ecdsa_sha1]) is None


def test_server_signatures_verify_with_cryptography() -> None:
    ecdsa = P256.sign(SIGNED, ec.ECDSA(hashes.SHA384()))
    assert (
        server_signature_refusal(
            P256.public_key(), S.ecdsa_secp384r1_sha384, ecdsa, SIGNED, ECDSA_SUITE
        )
        is None
    )
    pss = RSA.sign(SIGNED, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert (
        server_signature_refusal(RSA.public_key(), S.rsa_pss_rsae_sha256, pss, SIGNED, RSA_SUITE)
        is None
    )
    pkcs1 = RSA.sign(SIGNED, padding.PKCS1v15(), hashes.SHA256())
    assert (
        server_signature_refusal(RSA.public_key(), S.rsa_pkcs1_sha256, pkcs1, SIGNED, RSA_SUITE)
        is None
    )


def test_bad_server_signatures_are_refused() -> None:
    pkcs1 = RSA.sign(SIGNED, padding.PKCS1v15(), hashes.SHA256())
    refusal = server_signature_refusal(
        RSA.public_key(), S.rsa_pkcs1_sha256, pkcs1, SIGNED + b"x", RSA_SUITE
    )
    assert refusal is not None and "does not verify" in refusal
    sha1 = RSA.sign(SIGNED, padding.PKCS1v15(), hashes.SHA1())
    refusal = server_signature_refusal(RSA.public_key(), S.rsa_pkcs1_sha1, sha1, SIGNED, RSA_SUITE)
    assert refusal is not None and "did not offer" in refusal
    # An RSA certificate cannot serve an ECDSA suite, nor an EC one an RSA suite.
    refusal = server_signature_refusal(
        RSA.public_key(), S.rsa_pkcs1_sha256, pkcs1, SIGNED, ECDSA_SUITE
    )
    assert refusal is not None and "no EC key" in refusal
    ecdsa = P256.sign(SIGNED, ec.ECDSA(hashes.SHA256()))
    refusal = server_signature_refusal(
        P256.public_key(), S.ecdsa_secp256r1_sha256, ecdsa, SIGNED, RSA_SUITE
    )
    assert refusal is not None and "no RSA key" in refusal
    # A scheme of the other algorithm than the key's.
    refusal = server_signature_refusal(
        P256.public_key(), S.rsa_pss_rsae_sha256, ecdsa, SIGNED, ECDSA_SUITE
    )
    assert refusal is not None and "cannot make" in refusal

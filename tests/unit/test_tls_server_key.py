"""Which server keys the TLS client accepts, and that received certificates stay bytes."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa, utils

from edgeagent.tls import connection  # before any tlslite import: see edgeagent/tls/__init__
from edgeagent.tls.client import handshake_settings
from edgeagent.tls.connection import _ServerKey, server_key_refusal


def settings() -> Any:
    return handshake_settings().validate()


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_the_tls13_curves_are_accepted(curve: ec.EllipticCurve) -> None:
    assert server_key_refusal(ec.generate_private_key(curve).public_key(), settings()) is None


@pytest.mark.parametrize("curve", [ec.SECP256K1(), ec.BrainpoolP256R1(), ec.SECP224R1()])
def test_other_curves_are_refused_by_name(curve: ec.EllipticCurve) -> None:
    refusal = server_key_refusal(ec.generate_private_key(curve).public_key(), settings())
    assert refusal is not None and curve.name in refusal


def test_rsa_keys_within_the_size_limits_are_accepted_others_refused() -> None:
    limits = settings()
    limits.minKeySize = 2048
    assert server_key_refusal(rsa.generate_private_key(65537, 2048).public_key(), limits) is None
    refusal = server_key_refusal(rsa.generate_private_key(65537, 1024).public_key(), limits)
    assert refusal is not None and "1024 bits" in refusal


def test_ed25519_is_accepted_ed448_is_not() -> None:
    assert server_key_refusal(ed25519.Ed25519PrivateKey.generate().public_key(), settings()) is None
    refusal = server_key_refusal(ed448.Ed448PrivateKey.generate().public_key(), settings())
    assert refusal is not None and "Ed448" in refusal


def test_certificates_from_the_network_are_not_parsed_by_tlslite() -> None:
    not_a_certificate = bytearray(b"\x30\x03\x02\x01\x01")
    received = connection.tls_messages.X509().parseBinary(not_a_certificate)
    assert received.bytes == not_a_certificate
    assert received.publicKey is None  # tlslite's parser never ran


def _ecdsa(curve: ec.EllipticCurve, digest: bytes, algorithm: hashes.HashAlgorithm) -> Any:
    private = ec.generate_private_key(curve)
    signature = private.sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))
    return _ServerKey(private.public_key()), signature


def test_an_ecdsa_certificate_verify_must_use_its_curves_scheme() -> None:
    digest384 = bytes(range(48))
    key, signature = _ecdsa(ec.SECP384R1(), digest384, hashes.SHA384())
    assert key.verify(signature, digest384, None, "sha384")  # ecdsa_secp384r1_sha384
    assert not key.verify(signature, digest384, "pss", "sha384")  # an RSA scheme's padding
    digest256 = bytes(range(32))
    key, signature = _ecdsa(ec.SECP384R1(), digest256, hashes.SHA256())
    assert not key.verify(signature, digest256, None, "sha256")  # P-384 signs with SHA-384


def test_an_rsa_certificate_verify_must_be_pss() -> None:
    private = rsa.generate_private_key(65537, 2048)
    digest = bytes(range(32))
    prehashed = utils.Prehashed(hashes.SHA256())
    pss = private.sign(digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32), prehashed)
    pkcs1 = private.sign(digest, padding.PKCS1v15(), prehashed)
    key = _ServerKey(private.public_key())
    assert key.verify(pss, digest, "pss", "sha256", 32)  # rsa_pss_rsae_sha256
    assert not key.verify(pkcs1, digest, "pkcs1", "sha256")  # not allowed in TLS 1.3
    assert key.curve_name is None  # tlslite's ECDSA branch then reports a curve mismatch

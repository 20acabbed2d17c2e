"""ECDHE on OpenSSL, behind tlslite-ng's key-exchange interface.

tlslite computes X25519 in pure Python and the NIST curves with
python-ecdsa (milliseconds a handshake). These classes do the same work
with ``cryptography``; TLS 1.3 reaches them through
``AgentTLSConnection._getKEX``, TLS 1.2 through :mod:`edgeagent.tls.tls12`.
Both versions use the same shared secret: the X25519 output, or the x
coordinate of the ECDH point (RFC 8422 5.10, RFC 8446 7.4.2).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from tlslite.constants import GroupName
from tlslite.errors import TLSIllegalParameterException


class X25519Exchange:
    """tlslite's key-exchange interface for X25519, on OpenSSL."""

    def get_random_private_key(self) -> x25519.X25519PrivateKey:
        return x25519.X25519PrivateKey.generate()

    def calc_public_value(self, private: x25519.X25519PrivateKey, *_: Any) -> bytearray:
        return bytearray(private.public_key().public_bytes_raw())

    def calc_shared_key(self, private: x25519.X25519PrivateKey, peer: bytes, *_: Any) -> bytes:
        try:
            return private.exchange(x25519.X25519PublicKey.from_public_bytes(bytes(peer)))
        except ValueError as error:  # wrong length, or an all-zero shared secret
            raise TLSIllegalParameterException(f"bad X25519 key share: {error}") from error


class NistExchange:
    """tlslite's key-exchange interface for the NIST curves, on OpenSSL."""

    def __init__(self, curve: ec.EllipticCurve) -> None:
        self._curve = curve

    def get_random_private_key(self) -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(self._curve)

    def calc_public_value(self, private: ec.EllipticCurvePrivateKey, *_: Any) -> bytearray:
        return bytearray(
            private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def calc_shared_key(self, private: ec.EllipticCurvePrivateKey, peer: bytes, *_: Any) -> bytes:
        peer = bytes(peer)
        # Uncompressed points only: the only format we offer (RFC 8422 5.1.2).
        if not peer.startswith(b"\x04"):
            raise TLSIllegalParameterException("ECDHE key share is not an uncompressed point")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, peer)
        except ValueError as error:  # not on the curve, or malformed
            raise TLSIllegalParameterException(f"bad ECDHE key share: {error}") from error
        return private.exchange(ec.ECDH(), public)  # the x coordinate


NIST_GROUPS: dict[int, ec.EllipticCurve] = {
    GroupName.secp256r1: ec.SECP256R1(),
    GroupName.secp384r1: ec.SECP384R1(),
    GroupName.secp521r1: ec.SECP521R1(),
}

# The groups this client offers, in the ClientHello's (tlslite's) spelling.
GROUPS = ["x25519", "secp256r1", "secp384r1", "secp521r1"]


def exchange_for(group: int) -> X25519Exchange | NistExchange | None:
    """Our key exchange for a TLS group id, or None for a group we never compute."""
    if group == GroupName.x25519:
        return X25519Exchange()
    if group in NIST_GROUPS:
        return NistExchange(NIST_GROUPS[group])
    return None


def group_name(group: int) -> str:
    return GroupName.toRepr(group) or f"group {group:#06x}"

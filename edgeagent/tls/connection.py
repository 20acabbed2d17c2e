"""tlslite-ng's TLS connection with its public-key work done by ``cryptography``.

tlslite does ECDHE and checks the server's CertificateVerify with
pure-Python elliptic-curve code (~9 ms of a ~17 ms handshake). This subclass
routes both through OpenSSL, and it verifies the server's chain and host name
the moment the server's Certificate arrives: before we send our own
certificate or sign anything, so an impostor learns nothing from us.

Two documented-by-code hooks of tlslite 0.8.2 are overridden (pinned in
pyproject.toml), the ``_getKEX`` factory and ``_clientGetKeyFromChain``, and
the certificates the server sends are kept as bytes (``_ReceivedX509``):
tlslite would parse each with its own pure-Python ASN.1 code and python-ecdsa
(~60 µs a certificate, on input from the network) before we parse it with
cryptography anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils, x25519
from tlslite import messages as tls_messages
from tlslite.constants import AlertDescription, GroupName
from tlslite.errors import TLSIllegalParameterException
from tlslite.tlsconnection import TLSConnection
from tlslite.x509 import X509

from edgeagent.errors import ServerCertificateUntrusted
from edgeagent.tls.aead import install_fast_aead

ChainCheck = Callable[[list[x509.Certificate]], None]

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}

# tlslite names curves as python-ecdsa does.
_CURVE_NAMES = {"secp256r1": "NIST256p", "secp384r1": "NIST384p", "secp521r1": "NIST521p"}
# TLS 1.3 signature schemes exist for these curves only (RFC 8446 4.2.3).
_TLS13_CURVE_HASHES = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
_NIST_GROUPS: dict[int, ec.EllipticCurve] = {
    GroupName.secp256r1: ec.SECP256R1(),
    GroupName.secp384r1: ec.SECP384R1(),
    GroupName.secp521r1: ec.SECP521R1(),
}


class _X25519Exchange:
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


class _NistExchange:
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
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, bytes(peer))
        except ValueError as error:  # not on the curve, or malformed
            raise TLSIllegalParameterException(f"bad ECDHE key share: {error}") from error
        return private.exchange(ec.ECDH(), public)  # the x coordinate, as TLS 1.3 wants


class _ServerKey:
    """The server's public key, with the verify calls tlslite makes."""

    def __init__(self, key: Any) -> None:
        self._key = key
        # tlslite compares an ECDSA scheme's hash with the curve's; None for
        # other keys makes that a clean "curve mismatch" alert.
        self.curve_name: str | None = None
        if isinstance(key, ec.EllipticCurvePublicKey):
            self.curve_name = _CURVE_NAMES.get(key.curve.name, key.curve.name)
            self.key_type = "ecdsa"
        elif isinstance(key, rsa.RSAPublicKey):
            self.key_type = "rsa"
            self.n = key.public_numbers().n
        else:
            self.key_type = type(key).__name__

    def __len__(self) -> int:
        return int(getattr(self._key, "key_size", 0))

    def verify(
        self,
        signature: bytes,
        digest: bytes,
        pad: str | None = None,
        hash_name: str = "sha256",
        salt_len: int | None = None,
    ) -> bool:
        algorithm = _HASHES.get(hash_name)
        if algorithm is None:
            return False
        prehashed = utils.Prehashed(algorithm)
        try:
            if isinstance(self._key, ec.EllipticCurvePublicKey):
                # TLS 1.3 ties the scheme to the key: ecdsa_secp256r1_sha256 and
                # so on, never an RSA scheme's padding (RFC 8446 4.4.3).
                if pad is not None or _TLS13_CURVE_HASHES.get(self._key.curve.name) != hash_name:
                    return False
                self._key.verify(bytes(signature), bytes(digest), ec.ECDSA(prehashed))
            elif isinstance(self._key, rsa.RSAPublicKey) and pad == "pss":
                pss = padding.PSS(
                    mgf=padding.MGF1(algorithm),
                    salt_length=algorithm.digest_size if salt_len is None else salt_len,
                )
                self._key.verify(bytes(signature), bytes(digest), pss, prehashed)
            else:
                return False  # TLS 1.3 allows no other server signatures we offer
        except InvalidSignature:
            return False
        return True

    def hashAndVerify(self, signature: bytes, data: bytes, *_: Any) -> bool:
        if not isinstance(self._key, ed25519.Ed25519PublicKey):
            return False
        try:
            self._key.verify(bytes(signature), bytes(data))
        except InvalidSignature:
            return False
        return True


class AgentTLSConnection(TLSConnection):  # type: ignore[misc]
    """A tlslite client connection that checks the server first and computes fast."""

    def __init__(self, sock: Any, check_chain: ChainCheck) -> None:
        super().__init__(sock)
        install_fast_aead(self._recordLayer)
        self._check_chain = check_chain
        self.server_chain_checked = False

    @staticmethod
    def _getKEX(group: int, version: Any) -> Any:
        if group == GroupName.x25519:
            return _X25519Exchange()
        if group in _NIST_GROUPS:
            return _NistExchange(_NIST_GROUPS[group])
        return TLSConnection._getKEX(group, version)

    def _clientGetKeyFromChain(
        self, certificate: Any, settings: Any, tack_ext: Any = None
    ) -> Generator[Any, None, None]:
        presented = certificate.cert_chain
        if not presented or not presented.x509List:
            yield from self._sendError(
                AlertDescription.illegal_parameter, "the server sent no certificate"
            )
        try:
            chain = [x509.load_der_x509_certificate(bytes(c.bytes)) for c in presented.x509List]
        except ValueError as error:
            raise ServerCertificateUntrusted(
                f"the server sent a certificate that is not valid DER X.509: {error}",
                "the cloud endpoint's certificate is malformed, or this is not the cloud",
            ) from error
        self._check_chain(chain)  # raises our error: the handshake stops here
        self.server_chain_checked = True
        key = chain[0].public_key()
        refusal = server_key_refusal(key, settings)
        if refusal is not None:
            yield from self._sendError(AlertDescription.handshake_failure, refusal)
        yield _ServerKey(key), presented, None


def server_key_refusal(key: Any, settings: Any) -> str | None:
    """Why the server's key is unfit for this handshake, or None (tlslite's own checks)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        hash_name = _TLS13_CURVE_HASHES.get(key.curve.name)
        if hash_name is None:
            return f"the server's key is on {key.curve.name}, which TLS 1.3 does not sign with"
        if hash_name not in settings.ecdsaSigHashes:
            return f"the server's key is on {key.curve.name}, whose hash we do not accept"
        return None
    if isinstance(key, rsa.RSAPublicKey):
        if not settings.minKeySize <= key.key_size <= settings.maxKeySize:
            return (
                f"the server's RSA key has {key.key_size} bits; accepted "
                f"{settings.minKeySize}..{settings.maxKeySize}"
            )
        return None
    if isinstance(key, ed25519.Ed25519PublicKey) and "Ed25519" in settings.more_sig_schemes:
        return None
    return f"the server's key is a {type(key).__name__}, which this client does not verify"


class _ReceivedX509(X509):  # type: ignore[misc]
    """A certificate as tlslite keeps it from a Certificate message: its bytes only."""

    def parseBinary(self, cert_bytes: bytes | bytearray) -> _ReceivedX509:
        self.bytes = bytearray(cert_bytes)
        return self


# Certificate messages build their X509 objects through this module-level name.
tls_messages.X509 = _ReceivedX509

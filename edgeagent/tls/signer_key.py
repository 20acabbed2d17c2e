"""Present a :class:`~edgeagent.signing.signer.Signer` as a tlslite private key.

tlslite signs the TLS 1.3 CertificateVerify by calling
``key.sign(digest, padding, hash_name, salt_len)`` (the transcript is already
hashed with the scheme's hash) and then checks its own signature with
``key.verify``. Both are routed here: signing to the token, verifying with
``cryptography``, so no pure-Python big-number code runs on the key.
"""

from __future__ import annotations

from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from edgeagent.errors import UnsupportedKeyType
from edgeagent.signing.signer import HashName, Signer

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def _hash_name(name: str) -> HashName:
    if name not in _HASHES:
        raise UnsupportedKeyType(
            f"the server asked for a {name} signature, which edgeagent does not make",
            "the cloud must accept SHA-256, SHA-384 or SHA-512 signatures",
        )
    return cast(HashName, name)


class SignerKey:
    """tlslite's private-key interface, backed by a Signer."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self.signer = signer  # TLS 1.2 signs through it directly (edgeagent.tls.tls12)
        self._public = signer.public_key()
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            self.key_type = "ecdsa"
        elif isinstance(self._public, rsa.RSAPublicKey):
            self.key_type = "rsa"
            # tlslite reads the modulus to skip PSS-SHA512 on small keys.
            self.n = self._public.public_numbers().n
        else:  # pragma: no cover - Signer.public_key is typed to these two
            raise UnsupportedKeyType(f"unsupported key type {type(self._public).__name__}")

    def __len__(self) -> int:
        return self._public.key_size

    def hasPrivateKey(self) -> bool:
        return True

    def sign(
        self,
        digest: bytearray,
        padding: str | None = None,
        hashAlg: str = "sha256",
        saltLen: int | None = None,
    ) -> bytearray:
        hash_name = _hash_name(hashAlg)
        if self.key_type == "ecdsa":
            return bytearray(self._signer.sign_digest(bytes(digest), hash_name, "ecdsa"))
        if padding != "pss":
            raise UnsupportedKeyType(
                "TLS 1.3 forbids RSA PKCS#1 v1.5 in CertificateVerify",
                "the server must offer an rsa_pss_rsae_* signature scheme",
            )
        return bytearray(self._signer.sign_digest(bytes(digest), hash_name, "pss"))

    def verify(
        self,
        sigBytes: bytearray,
        digest: bytearray,
        padding: str | None = None,
        hashAlg: str = "sha256",
        saltLen: int | None = None,
    ) -> bool:
        algorithm = _HASHES.get(hashAlg)
        if algorithm is None:
            return False
        prehashed = utils.Prehashed(algorithm)
        try:
            if isinstance(self._public, ec.EllipticCurvePublicKey):
                self._public.verify(bytes(sigBytes), bytes(digest), ec.ECDSA(prehashed))
            else:
                pss = padding_pss(algorithm, saltLen)
                self._public.verify(bytes(sigBytes), bytes(digest), pss, prehashed)
        except InvalidSignature:
            return False
        return True

    # tlslite only calls hashAndSign for EdDSA, which we never offer.
    def hashAndSign(self, *_args: Any) -> bytearray:
        raise UnsupportedKeyType("EdDSA keys are not supported")


def padding_pss(algorithm: hashes.HashAlgorithm, salt_len: int | None) -> padding.PSS:
    """PSS with MGF1 on the same hash; salt = digest length unless told otherwise."""
    return padding.PSS(
        mgf=padding.MGF1(algorithm),
        salt_length=algorithm.digest_size if salt_len is None else salt_len,
    )

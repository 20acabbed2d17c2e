"""A Signer over a private key file (``device.cryptoki.mode = off``)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding

from edgeagent.errors import CertificateUnreadable, UnsupportedKeyType
from edgeagent.signing.signer import HashName, Padding, PublicKey, Signer

_HASHES: dict[HashName, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


class FileSigner(Signer):
    """The device key read from a PEM file on disk."""

    cryptoki = False

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CertificateUnreadable(
                f"private key file {path} does not exist",
                "set device.key_path, or keep the key on a token (device.cryptoki.mode)",
            ) from None
        except PermissionError as error:
            raise CertificateUnreadable(
                f"cannot read private key file {path}: permission denied",
                f"make {path} readable by the user running the agent (and no one else)",
            ) from error
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            raise CertificateUnreadable(
                f"{path} is not an unencrypted PEM private key",
                "point device.key_path at the device's PEM private key",
            ) from error
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise UnsupportedKeyType(
                f"{path} holds a {type(key).__name__}; only EC and RSA keys can be used",
            )
        self._key = key

    @property
    def location(self) -> str:
        return str(self._path)

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign_digest(self, digest: bytes, hash_name: HashName, padding: Padding) -> bytes:
        prehashed = utils.Prehashed(_HASHES[hash_name])
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            if padding != "ecdsa":
                raise UnsupportedKeyType(f"an EC key cannot sign with {padding}")
            return self._key.sign(digest, ec.ECDSA(prehashed))
        if padding == "pss":
            pss = rsa_padding.PSS(
                mgf=rsa_padding.MGF1(_HASHES[hash_name]), salt_length=rsa_padding.PSS.DIGEST_LENGTH
            )
            return self._key.sign(digest, pss, prehashed)
        if padding == "pkcs1v15":
            return self._key.sign(digest, rsa_padding.PKCS1v15(), prehashed)
        raise UnsupportedKeyType(f"an RSA key cannot sign with {padding}")

    def close(self) -> None:
        pass

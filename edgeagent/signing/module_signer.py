"""The Signer for a key on a PKCS#11 token, with the module loaded in-process.

    with open_module_signer(Path("/usr/lib/softhsm/libsofthsm2.so"),
                            "pkcs11:token=my-token;object=my-key", pin="123456") as signer:
        der = signer.sign_digest(hashlib.sha256(b"data").digest(), "sha256", "ecdsa")

Digests are hashed on the host and signed with the raw mechanisms
(CKM_ECDSA, CKM_RSA_PKCS_PSS, CKM_RSA_PKCS over a DigestInfo): some modules
stub out C_Digest*, and a slow token gets one round trip per signature.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import utils
from pkcs11 import MGF, Mechanism

from edgeagent.errors import (
    MissingConfigValue,
    PinIncorrect,
    TokenOperationFailed,
    UnsupportedKeyType,
)
from edgeagent.pkcs11.keys import KeyKind, key_kind, read_public_key
from edgeagent.pkcs11.module import load_module, pkcs11_errors
from edgeagent.pkcs11.origin import KeyOrigin, read_key_origin
from edgeagent.pkcs11.pins import choose_pin
from edgeagent.pkcs11.select import SelectedKey, select_key
from edgeagent.pkcs11.uri import Pkcs11Uri
from edgeagent.signing.signer import DIGEST_SIZES, HashName, Padding, PublicKey, Signer

_PSS_HASH: dict[HashName, tuple[Mechanism, MGF]] = {
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}

# DER DigestInfo prefixes (RFC 8017 section 9.2, note 1): CKM_RSA_PKCS signs
# whatever it is given, so the hash's identity has to be prepended here.
DIGEST_INFO_PREFIX: dict[HashName, bytes] = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


class ModuleSigner(Signer):
    """A private key on a token; thread-safe (calls are serialised per module)."""

    def __init__(self, selected: SelectedKey, public: PublicKey, kind: KeyKind) -> None:
        self._selected = selected
        self._public = public
        self._kind = kind
        self._closed = False
        self._close_lock = threading.Lock()

    @property
    def cryptoki(self) -> bool:
        return True

    @property
    def location(self) -> str:
        return str(self._selected.uri)

    @property
    def key_kind(self) -> KeyKind:
        return self._kind

    def public_key(self) -> PublicKey:
        return self._public

    def key_origin(self) -> KeyOrigin:
        """CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE of this very key."""
        session = self._selected.session
        with session.lock:
            return read_key_origin(self._selected.key)

    def sign_digest(self, digest: bytes, hash_name: HashName, padding: Padding) -> bytes:
        expected = DIGEST_SIZES.get(hash_name)
        if expected is None or len(digest) != expected:
            raise ValueError(f"a {hash_name} digest is {expected} bytes, got {len(digest)}")
        mechanism, data, param = self._mechanism(digest, hash_name, padding)
        session = self._selected.session
        with session.lock:
            if self._closed:
                raise TokenOperationFailed(f"signer for {self.location} is closed")
            with pkcs11_errors(f"signing with {self.location}", session.description.label):
                signature = bytes(
                    self._selected.key.sign(data, mechanism=mechanism, mechanism_param=param)
                )
        if padding == "ecdsa":
            # PKCS#11 returns r||s; TLS and X.509 want SEQUENCE { r, s }.
            half = len(signature) // 2
            r = int.from_bytes(signature[:half], "big")
            s = int.from_bytes(signature[half:], "big")
            return utils.encode_dss_signature(r, s)
        return signature

    def _mechanism(
        self, digest: bytes, hash_name: HashName, padding: Padding
    ) -> tuple[Mechanism, bytes, Any]:
        if padding == "ecdsa":
            if self._kind.algorithm != "ec":
                raise UnsupportedKeyType(f"ECDSA requested but {self.location} is {self._kind}")
            return Mechanism.ECDSA, digest, None
        if self._kind.algorithm != "rsa":
            raise UnsupportedKeyType(f"{padding} requested but {self.location} is {self._kind}")
        if padding == "pss":
            hash_mech, mgf = _PSS_HASH[hash_name]
            return Mechanism.RSA_PKCS_PSS, digest, (hash_mech, mgf, len(digest))
        if padding == "pkcs1v15":
            return Mechanism.RSA_PKCS, DIGEST_INFO_PREFIX[hash_name] + digest, None
        raise ValueError(f"unknown padding {padding!r}")

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._selected.session.release()

    def __repr__(self) -> str:
        return f"ModuleSigner({self.location!r}, {self._kind})"


def open_module_signer(
    module_path: Path,
    key_uri: str | None,
    pin: str | None,
    key_pin: str | None = None,
    key_pin_key: str = "device.key_pin",
    pin_key: str = "device.cryptoki.pin",
) -> ModuleSigner:
    """Load the module, select the key ``key_uri`` names, log in, and read its public key.

    ``key_uri`` None (or empty) means "the first private key on the first
    token", with a warning when there are several. ``pin`` is the token-wide
    PIN (device.cryptoki.pin), ``key_pin`` one configured for this key; see
    :func:`edgeagent.pkcs11.pins.choose_pin` for which wins. Raises the
    TokenError subclasses from ``edgeagent.errors``.
    """
    uri = Pkcs11Uri.parse(key_uri) if key_uri else None
    choice = choose_pin(uri, pin, key_pin, key_pin_key, pin_key)
    module = load_module(module_path)
    try:
        selected = select_key(module, uri, choice.pin)
    except PinIncorrect as error:
        # The PIN came from somewhere specific: send the user there.
        raise PinIncorrect(error.cause, f"check {choice.source}; " + error.fix) from error
    except MissingConfigValue as error:
        if choice.pin is None:
            raise MissingConfigValue(
                error.cause,
                "set device.cryptoki.pin (or device.key_pin, or pin-source in the key URI)",
            ) from error
        raise
    try:
        with (
            selected.session.lock,
            pkcs11_errors("reading the public key", selected.session.description.label),
        ):
            public = read_public_key(selected.session.session, selected.key)
        kind = key_kind(public, selected.uri.object or "")
    except BaseException:
        selected.session.release()
        raise
    return ModuleSigner(selected, public, kind)

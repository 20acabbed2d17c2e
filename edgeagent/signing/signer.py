"""The Signer seam: whatever holds the device's private key.

The TLS client, the CSR builder and the signing service all take a
``Signer`` and never care where the key lives::

    with open_signer(...) as signer:           # module, socket or file
        der_sig = signer.sign_digest(
            hashlib.sha256(data).digest(), "sha256", "ecdsa")

Digests are computed on the host and the signer applies the raw-digest
mechanism (CKM_ECDSA, CKM_RSA_PKCS_PSS): some modules stub out C_Digest*,
and it saves round trips to slow tokens.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, Self, runtime_checkable

from edgeagent.pkcs11.public_key import PublicKey
from edgeagent.protocol.schemes import DIGEST_SIZES, HashName, Padding

__all__ = ["DIGEST_SIZES", "HashName", "Padding", "PublicKey", "Signer", "sign_data"]


@runtime_checkable
class Signer(Protocol):
    """A private key that can sign digests. Implementations must be thread-safe.

    Implementations subclass this to be context managers: leaving the
    ``with`` block closes them.
    """

    @property
    def cryptoki(self) -> bool:
        """True when the key lives on a PKCS#11 token (module or socket)."""
        ...

    @property
    def location(self) -> str:
        """Where the key lives, for humans: a URI, a socket path, a file path."""
        ...

    def public_key(self) -> PublicKey:
        """The public half, to match against the certificate."""
        ...

    def sign_digest(self, digest: bytes, hash_name: HashName, padding: Padding) -> bytes:
        """Sign an already-computed digest. ECDSA signatures come back DER-encoded."""
        ...

    def close(self) -> None:
        """Release sessions, sockets, handles. Idempotent."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sign_data(signer: Signer, data: bytes, hash_name: HashName, padding: Padding) -> bytes:
    """Hash ``data`` on the host, then have the signer sign the digest."""
    return signer.sign_digest(hashlib.new(hash_name, data).digest(), hash_name, padding)

"""Record-layer AEADs for tlslite-ng, backed by ``cryptography`` (OpenSSL).

tlslite-ng's own AES-GCM and ChaCha20-Poly1305 are pure Python (about
0.2 MB/s); these run at OpenSSL speed. They implement the small interface
tlslite's record layer uses (``seal``/``open`` and a few attributes) and are
installed per connection by :func:`install_fast_aead`, never globally.

TLS 1.3 and TLS 1.2 alike: the nonce is built by tlslite's record layer
(checked against the RFCs for 0.8.2), which picks the construction by the
cipher's ``name``, so the names below must stay tlslite's. TLS 1.2 AES-GCM
(RFC 5288): a 4-byte implicit salt from the key block followed by the
8-byte explicit nonce that travels in the record (tlslite sends the
sequence number there); TLS 1.2 ChaCha20-Poly1305 (RFC 7905) and TLS 1.3:
the 12-byte IV XOR the padded sequence number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from tlslite.constants import CipherSuite

# The cipher names we offer in the ClientHello: all have a fast AEAD below.
CIPHER_NAMES = ["aes256gcm", "aes128gcm", "chacha20-poly1305"]


class _Aead:
    """tlslite's AEAD interface over a ``cryptography`` AEAD object."""

    isBlockCipher = False
    isAEAD = True
    nonceLength = 12
    tagLength = 16
    implementation = "openssl"

    def __init__(self, name: str, key: bytes, aead: AESGCM | ChaCha20Poly1305) -> None:
        self.name = name
        self.key = key
        self._aead = aead

    def seal(self, nonce: bytes, plaintext: bytes, data: bytes) -> bytearray:
        return bytearray(self._aead.encrypt(bytes(nonce), bytes(plaintext), bytes(data)))

    def open(self, nonce: bytes, ciphertext: bytes, data: bytes) -> bytearray | None:
        try:
            return bytearray(self._aead.decrypt(bytes(nonce), bytes(ciphertext), bytes(data)))
        except InvalidTag:
            return None  # tlslite turns None into a bad_record_mac alert


def _aes_gcm(key: bytes, _implementations: Any = None) -> _Aead:
    key = bytes(key)
    return _Aead(f"aes{len(key) * 8}gcm", key, AESGCM(key))


def _chacha20(key: bytes, _implementations: Any = None) -> _Aead:
    key = bytes(key)
    return _Aead("chacha20-poly1305", key, ChaCha20Poly1305(key))


def _cipher_settings(cipher_suite: int) -> tuple[int, int, Callable[..., _Aead]]:
    """Our replacement for ``RecordLayer._getCipherSettings``: (key length, IV length, factory).

    The IV length is what the key block yields: 4 bytes of implicit salt for
    TLS 1.2 AES-GCM, a 12-byte IV for ChaCha20-Poly1305 (TLS 1.3 derives its
    IVs itself).
    """
    if cipher_suite in CipherSuite.aes256GcmSuites:
        return 32, 4, _aes_gcm
    if cipher_suite in CipherSuite.aes128GcmSuites:
        return 16, 4, _aes_gcm
    if cipher_suite in CipherSuite.chacha20Suites:
        return 32, 12, _chacha20
    # Unreachable while the ClientHello offers only CIPHER_NAMES; refusing is
    # safer than silently falling back to pure-Python crypto.
    raise ValueError(f"cipher suite {cipher_suite:#06x} has no fast AEAD")


def install_fast_aead(record_layer: Any) -> None:
    """Make one tlslite ``RecordLayer`` create its ciphers with ``cryptography``.

    ``_getCipherSettings`` is a staticmethod looked up through the instance,
    so an instance attribute overrides it for this connection only.
    """
    record_layer._getCipherSettings = _cipher_settings

"""What token administration reports: plain values, no python-pkcs11.

    for key in admin.list_keys(uri):       # module mode or the signing socket
        print(key.token, key.label, key.id.hex(), key.kind, key.uri)

Produced by :mod:`edgeagent.pkcs11.admin` in module mode, and carried over
the signing socket by :mod:`edgeagent.protocol.admin` in socket mode: the
socket-mode client builds them without loading python-pkcs11.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlotListing:
    """One slot with a token in it, initialised or not (`agent hsm list-tokens`)."""

    slot_id: int
    initialized: bool
    label: str
    manufacturer: str
    model: str
    serial: str
    login_required: bool
    user_pin_initialized: bool
    uri: str | None
    """The token's URI (p11tool's attributes); None for a blank token."""


@dataclass(frozen=True)
class KeyListing:
    """One private key (`agent hsm list-keys`), with the URI to paste into device.key_uri."""

    token: str
    label: str
    id: bytes
    kind: str
    """'EC secp256r1', 'RSA-2048', or what the module says when we cannot use it."""
    uri: str
    public_key_der: bytes | None
    """DER SubjectPublicKeyInfo, when the public half is readable."""


@dataclass(frozen=True)
class CreatedKey:
    """The key `agent hsm create-key` made, or the one with its label that it kept."""

    entry: KeyListing
    reused: bool
    """True when a key with the label existed and was kept (no --new-key)."""

"""Deleting a key pair from a token (`agent hsm delete-key`).

    delete_key(module, found, "123456", label="spare", key_id=None)
    # ['private key pkcs11:...;object=spare;...', 'public key with id fea481b1']

The private key goes with the objects stored next to it (same CKA_ID, else
same label): its public key and any certificate.
"""

from __future__ import annotations

from typing import Any

from pkcs11 import Attribute, ObjectClass

from edgeagent.errors import KeyNotFound
from edgeagent.pkcs11.admin.session import admin_session
from edgeagent.pkcs11.module import Module, pkcs11_errors
from edgeagent.pkcs11.objects import find_keys, key_uri, twin_template
from edgeagent.pkcs11.tokens import FoundToken

_TWINS = {ObjectClass.PUBLIC_KEY: "public key", ObjectClass.CERTIFICATE: "certificate"}


def delete_key(
    module: Module, found: FoundToken, pin: str | None, label: str | None, key_id: bytes | None
) -> list[str]:
    """Destroy the private key(s) named, with their public keys and certificates (same id).

    Returns what was destroyed, for the user. KeyNotFound if nothing matches.
    """
    if label is None and key_id is None:
        raise KeyNotFound("no key named", "pass --label or --id (or a URI with object= or id=)")
    desc = found.description
    destroyed: list[str] = []
    with admin_session(module, found, pin) as session, pkcs11_errors("deleting a key", desc.label):
        keys = find_keys(session, ObjectClass.PRIVATE_KEY, label, key_id)
        if not keys:
            raise KeyNotFound(
                f"token {desc.label!r} has no private key with {_naming(label, key_id)}",
                "`agent hsm list-keys` shows the keys there are",
            )
        for key in keys:
            ident = key[Attribute.ID]
            twins: list[tuple[ObjectClass, Any]] = []
            for cls in _TWINS:
                template = twin_template(cls, key)
                if template is not None:
                    twins.extend((cls, obj) for obj in session.get_objects(template))
            destroyed.append(f"private key {key_uri(desc, key)}")
            key.destroy()
            for cls, obj in twins:
                destroyed.append(f"{_TWINS[cls]} with id {bytes(ident or b'').hex() or '-'}")
                obj.destroy()
    return destroyed


def _naming(label: str | None, key_id: bytes | None) -> str:
    parts = []
    if label is not None:
        parts.append(f"label {label!r}")
    if key_id is not None:
        parts.append(f"id {key_id.hex()}")
    return " and ".join(parts)

"""Key objects on a token: how they are searched for, put in order and named.

    keys = find_keys(session, ObjectClass.PRIVATE_KEY, label="device-key")
    key_uri(token, keys[0])     # pkcs11:...;token=t;object=device-key;id=%01;type=private

C_FindObjects order is not stable: SoftHSM2 returns objects in a different
order in each process. The agent's checks, the bridge, the signing service
and `agent hsm list-keys` run in different processes and must all call the
same key "first", so every search here is put in one order that depends only
on what is stored on the token: CKA_ID, then label. An attribute that cannot
be read sorts as empty rather than failing the search.

Call these with the token session's lock held.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pkcs11 import Attribute, ObjectClass

from edgeagent.pkcs11.tokens import TokenDescription
from edgeagent.pkcs11.uri import Pkcs11Uri


def attribute_or_none(obj: Any, attribute: Attribute) -> Any:
    """The attribute's value, or None when it cannot be read (the key just goes unnamed)."""
    try:
        return obj[attribute]
    except Exception:  # any module fault here only costs the key its name or place
        return None


def search_template(
    object_class: ObjectClass, label: str | None = None, key_id: bytes | None = None
) -> dict[Attribute, Any]:
    """The C_FindObjects template for objects of ``object_class`` with this label and id."""
    template: dict[Attribute, Any] = {Attribute.CLASS: object_class}
    if label is not None:
        template[Attribute.LABEL] = label
    if key_id is not None:
        template[Attribute.ID] = key_id
    return template


def stable_order(key: Any) -> tuple[bytes, str]:
    """Sort key for objects: CKA_ID, then label (see the module docstring)."""
    key_id = attribute_or_none(key, Attribute.ID)
    return (bytes(key_id or b""), str(attribute_or_none(key, Attribute.LABEL) or ""))


def find_keys(
    session: Any, object_class: ObjectClass, label: str | None = None, key_id: bytes | None = None
) -> list[Any]:
    """The objects matching :func:`search_template`, in :func:`stable_order`."""
    return sorted(
        session.get_objects(search_template(object_class, label, key_id)), key=stable_order
    )


def twin_template(object_class: ObjectClass, key: Any) -> dict[Attribute, Any] | None:
    """The template for the ``object_class`` objects stored with ``key``: same CKA_ID,
    else same label; None when the key has neither (nothing ties an object to it)."""
    key_id = attribute_or_none(key, Attribute.ID)
    if key_id:
        return search_template(object_class, key_id=bytes(key_id))
    label = attribute_or_none(key, Attribute.LABEL)
    if label:
        return search_template(object_class, label=str(label))
    return None


def key_uri(token: TokenDescription, key: Any) -> Pkcs11Uri:
    """The URI that names ``key`` on ``token``, in p11tool's attribute set."""
    label = attribute_or_none(key, Attribute.LABEL)
    key_id = attribute_or_none(key, Attribute.ID)
    return replace(
        token.uri, object=label or None, id=bytes(key_id) if key_id else None, type="private"
    )

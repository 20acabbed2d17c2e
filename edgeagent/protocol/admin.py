"""Token administration over the signing socket (version 1, additive ops).

Spec: docs/signing-protocol.md section 3.5. Read ops (``list_tokens``,
``list_keys``) are served to every allowed peer; mutating ops
(``create_key``, ``delete_key``) only to the service's own user and root.
Initialising a token and changing a PIN are not offered: both carry PINs,
and the service's PIN lives in its own configuration (section 3.5).

    -> {"op": "list_tokens"}
    <- {"ok": true, "tokens": [{"slot_id": 0, "initialized": true, "label": "t", ...}]}
    -> {"op": "list_keys", "uri": "pkcs11:token=t"}
    <- {"ok": true, "keys": [{"token": "t", "label": "k", "id": "01ab", "kind": "EC secp256r1",
                             "uri": "pkcs11:...;type=private", "public_key": "<base64 DER>"}]}
    -> {"op": "create_key", "uri": "pkcs11:token=t", "key_type": "ec-p256", "label": "k",
        "id": null, "force_new": false}
    <- {"ok": true, "reused": false, "key": {...as in list_keys...}}
    -> {"op": "delete_key", "uri": "pkcs11:token=t", "label": "k", "id": null}
    <- {"ok": true, "deleted": ["private key pkcs11:...", "public key with id 01ab"]}
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

from edgeagent.pkcs11.keyspecs import KEY_SPECS, KeySpec
from edgeagent.pkcs11.listings import KeyListing, SlotListing
from edgeagent.protocol.messages import BadRequest, b64, parse_uri_field, unb64

READ_OPS = ("list_tokens", "list_keys")
MUTATING_OPS = ("create_key", "delete_key")
ADMIN_OPS = READ_OPS + MUTATING_OPS


def slot_to_wire(slot: SlotListing) -> dict[str, Any]:
    return {
        "slot_id": slot.slot_id,
        "initialized": slot.initialized,
        "label": slot.label,
        "manufacturer": slot.manufacturer,
        "model": slot.model,
        "serial": slot.serial,
        "login_required": slot.login_required,
        "user_pin_initialized": slot.user_pin_initialized,
        "uri": slot.uri,
    }


def slot_from_wire(item: Any) -> SlotListing:
    if not isinstance(item, dict):
        raise BadRequest("a token entry must be an object")
    try:
        return SlotListing(
            slot_id=int(item["slot_id"]),
            initialized=bool(item["initialized"]),
            label=str(item["label"]),
            manufacturer=str(item["manufacturer"]),
            model=str(item["model"]),
            serial=str(item["serial"]),
            login_required=bool(item.get("login_required", False)),
            user_pin_initialized=bool(item.get("user_pin_initialized", False)),
            uri=None if item.get("uri") is None else str(item["uri"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BadRequest(f"malformed token entry: {error!r}") from error


def key_to_wire(key: KeyListing) -> dict[str, Any]:
    return {
        "token": key.token,
        "label": key.label,
        "id": key.id.hex(),
        "kind": key.kind,
        "uri": key.uri,
        "public_key": None if key.public_key_der is None else b64(key.public_key_der),
    }


def key_from_wire(item: Any) -> KeyListing:
    if not isinstance(item, dict):
        raise BadRequest("a key entry must be an object")
    try:
        der = None if item.get("public_key") is None else unb64(item, "public_key")
        return KeyListing(
            token=str(item["token"]),
            label=str(item["label"]),
            id=bytes.fromhex(str(item["id"])),
            kind=str(item["kind"]),
            uri=str(item["uri"]),
            public_key_der=der,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BadRequest(f"malformed key entry: {error!r}") from error


def _optional_text(message: dict[str, Any], field: str) -> str | None:
    value = message.get(field)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"field {field!r} must be a string or null")
    return value


def _optional_id(message: dict[str, Any]) -> bytes | None:
    value = _optional_text(message, "id")
    if value is None:
        return None
    try:
        return binascii.unhexlify(value)
    except (binascii.Error, ValueError) as error:
        raise BadRequest("field 'id' must be hexadecimal (e.g. \"01ab\")") from error


@dataclass(frozen=True)
class CreateKeyRequest:
    uri: str | None
    key_type: KeySpec
    label: str
    key_id: bytes | None
    force_new: bool


def parse_create_key(message: dict[str, Any]) -> CreateKeyRequest:
    key_type = message.get("key_type")
    if key_type not in KEY_SPECS:
        raise BadRequest(f"'key_type' must be one of {', '.join(KEY_SPECS)}")
    label = _optional_text(message, "label")
    if not label:
        raise BadRequest("'create_key' needs a non-empty 'label'")
    force_new = message.get("force_new", False)
    if not isinstance(force_new, bool):
        raise BadRequest("field 'force_new' must be true or false")
    return CreateKeyRequest(
        parse_uri_field(message), key_type, label, _optional_id(message), force_new
    )


@dataclass(frozen=True)
class DeleteKeyRequest:
    uri: str | None
    label: str | None
    key_id: bytes | None


def parse_delete_key(message: dict[str, Any]) -> DeleteKeyRequest:
    request = DeleteKeyRequest(
        parse_uri_field(message), _optional_text(message, "label"), _optional_id(message)
    )
    if request.label is None and request.key_id is None:
        raise BadRequest("'delete_key' needs a 'label' or an 'id'")
    return request

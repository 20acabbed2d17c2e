"""What the module's slots and a token's keys are (`agent hsm list-tokens`, `list-keys`).

    list_slots(module)                           # every slot with a token, blank ones too
    list_keys(module, found, "123456", uri)      # logged in: every private key uri names
    list_keys_without_login(module, found, uri)  # public objects only: no PIN spent

Keys come in the order every other search uses (``objects.py``): the first
one listed is the one a URI naming several keys selects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import pkcs11.exceptions as p11x
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, KeyType, ObjectClass, TokenFlag

from edgeagent.errors import UnsupportedKeyType
from edgeagent.pkcs11.admin.session import admin_session
from edgeagent.pkcs11.keys import ec_public_key, key_kind, read_public_key
from edgeagent.pkcs11.listings import KeyListing, SlotListing
from edgeagent.pkcs11.module import Module, pkcs11_errors
from edgeagent.pkcs11.objects import find_keys, key_uri
from edgeagent.pkcs11.public_key import PublicKey
from edgeagent.pkcs11.tokens import FoundToken, TokenDescription, describe, slots_with_tokens
from edgeagent.pkcs11.uri import Pkcs11Uri


def list_slots(module: Module) -> list[SlotListing]:
    """Every slot holding a token, in slot order, blank ones included."""
    listed = []
    for slot, token in slots_with_tokens(module):
        initialized = bool(token.flags & TokenFlag.TOKEN_INITIALIZED)
        desc = describe(slot, token)
        listed.append(
            SlotListing(
                slot_id=desc.slot_id,
                initialized=initialized,
                label=desc.label if initialized else "",
                manufacturer=desc.manufacturer,
                model=desc.model,
                serial=desc.serial,
                login_required=desc.login_required,
                user_pin_initialized=bool(token.flags & TokenFlag.USER_PIN_INITIALIZED),
                uri=str(desc.uri) if initialized else None,
            )
        )
    return listed


def list_keys(
    module: Module, found: FoundToken, pin: str | None, uri: Pkcs11Uri
) -> list[KeyListing]:
    """The private keys on ``found`` that ``uri``'s object / id name (all if it names none)."""
    desc = found.description
    with (
        admin_session(module, found, pin) as session,
        pkcs11_errors("listing keys", desc.label),
    ):
        keys = find_keys(session, ObjectClass.PRIVATE_KEY, uri.object, uri.id)
        return [key_listing(desc, session, k) for k in keys]


def list_keys_without_login(module: Module, found: FoundToken, uri: Pkcs11Uri) -> list[KeyListing]:
    """The key pairs on ``found`` seen through their public objects: no login, no PIN spent.

    Used when several tokens could be meant: the configured PIN belongs to
    one of them, and trying it on the others would count towards their
    lock-out. A private key stored without its public half is not seen.
    """
    desc = found.description
    with module.lock, pkcs11_errors("listing public keys", desc.label):
        session = found.token.open()
        try:
            publics = find_keys(session, ObjectClass.PUBLIC_KEY, uri.object, uri.id)
            return [
                _listing(
                    desc,
                    replace(key_uri(desc, public), type="private"),
                    partial(_public_of, public),
                    unreadable=(p11x.PKCS11Error,),
                )
                for public in publics
            ]
        finally:
            session.close()


def key_listing(desc: TokenDescription, session: Any, key: Any) -> KeyListing:
    """``key`` (a private key on ``desc``'s token, opened in ``session``) as listed."""
    return _listing(desc, key_uri(desc, key), lambda: read_public_key(session, key))


def _listing(
    desc: TokenDescription,
    uri: Pkcs11Uri,
    read: Callable[[], PublicKey],
    unreadable: tuple[type[Exception], ...] = (),
) -> KeyListing:
    der: bytes | None = None
    try:
        public = read()
        kind = str(key_kind(public, uri.object or ""))
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except UnsupportedKeyType as error:
        kind = f"unusable: {error.cause}"
    except unreadable:
        kind = "unknown (its public attributes are not readable)"
    return KeyListing(desc.label, uri.object or "", uri.id or b"", kind, str(uri), der)


def _public_of(public: Any) -> PublicKey:
    """The cryptography key of a public key object (its attributes are readable without login)."""
    key_type = public[Attribute.KEY_TYPE]
    if key_type == KeyType.EC:
        return ec_public_key(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
    if key_type == KeyType.RSA:
        n = int.from_bytes(public[Attribute.MODULUS], "big")
        e = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise UnsupportedKeyType(f"key type {getattr(key_type, 'name', key_type)}")

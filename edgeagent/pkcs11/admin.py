"""Token administration: initialise tokens, make and delete key pairs, change PINs.

    module = load_module(Path("/usr/lib/softhsm/libsofthsm2.so"))
    init_token(module, "my-token", so_pin="12345678", user_pin="123456")
    created = create_key(module, find_tokens(module, uri)[0], "123456", "ec-p256", "device-key")
    created.entry.uri          # what to paste into device.key_uri
    delete_key(module, found, "123456", label="device-key")

Every operation runs under the module's lock, in its own read/write session
that is closed before the lock is released: token administration is rare, and
the shared signing session (``tokens.py``) is read-only. Login state is per
token and application, so a session opened while the signing session is
logged in simply shares that login (and so never logs it out on close).

Decisions (docs/signing-protocol.md and the README repeat them for users):

- A private key is made with CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE and
  CKA_SIGN true, CKA_EXTRACTABLE false, and nothing else it could do
  (no decrypt, unwrap, derive): the device key signs, and nothing more.
- Its CKA_ID, when not chosen, is 8 random bytes (as OpenZiti's and
  pkcs11-tool's keys have); the label defaults to ``device-key``.
- Templates, tried in order until the module takes one:
  1. standard: CKA_EC_PARAMS in the public template only (as PKCS#11 says,
     and SoftHSM2 and tpm2-pkcs11 require), every other usage (decrypt,
     unwrap, derive, encrypt, wrap) explicitly false;
  2. EC only: CKA_EC_PARAMS in the private template too (CryptoAuthLib);
  3. usage left to the module: tpm2-pkcs11 fails (CKR_GENERAL_ERROR, "attr
     mismatch") when told CKA_DECRYPT false, because its TPM objects carry
     their own usage bits. CKA_SIGN, CKA_SENSITIVE, CKA_EXTRACTABLE false
     and the rest stay. tpm2-pkcs11 gets this one first: it refuses the
     others after printing ERROR lines on stderr the user should not see.
  A module that refuses a template may still have created an object
  (SoftHSM2 leaves an unlabelled private key behind): whatever a failed
  attempt left is destroyed before the next one.
- A token is *in use* when any object is visible on it without a login
  (every key pair made by this agent, pkcs11-tool or tpm2_ptool stores its
  public half as a public object) or when a configured key URI names it.
  Counting only public objects spends no PIN attempt. Such a token is never
  re-initialised.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pkcs11.exceptions as p11x
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass, TokenFlag
from pkcs11.attributes import AttributeMapper
from pkcs11.util.ec import encode_named_curve_parameters

from edgeagent.errors import (
    KeyNotFound,
    MissingConfigValue,
    TokenAmbiguous,
    TokenInUse,
    TokenOperationFailed,
    UnsupportedKeyType,
)
from edgeagent.pkcs11.keys import ec_public_key, key_kind, read_public_key
from edgeagent.pkcs11.module import Module, ckr_name, pkcs11_errors
from edgeagent.pkcs11.select import key_uri
from edgeagent.pkcs11.tokens import (
    FoundToken,
    TokenDescription,
    _describe,
    _with_attempts_left,
    find_tokens,
    token_matches,
)
from edgeagent.pkcs11.uri import Pkcs11Uri

log = logging.getLogger("edgeagent.pkcs11")

# Re-exported: callers that already need this module take them from here.
from edgeagent.pkcs11.keyspecs import DEFAULT_KEY_LABEL as DEFAULT_KEY_LABEL  # noqa: E402
from edgeagent.pkcs11.keyspecs import DEFAULT_KEY_SPEC as DEFAULT_KEY_SPEC  # noqa: E402
from edgeagent.pkcs11.keyspecs import KEY_SPECS as KEY_SPECS  # noqa: E402
from edgeagent.pkcs11.keyspecs import KeySpec as KeySpec  # noqa: E402

KEY_ID_BYTES = 8

_CURVES = {"ec-p256": "secp256r1", "ec-p384": "secp384r1"}
_TPM_HINT = (
    "tpm2-pkcs11 makes tokens with its own tool: "
    "tpm2_ptool addtoken --pid 1 --label <label> --sopin <SO PIN> --userpin <PIN> "
    "(after tpm2_ptool init), then run this again"
)
# What a module answers when it refuses a key template, rather than failing.
# CKR_GENERAL_ERROR: tpm2-pkcs11's answer to usage attributes it disagrees with.
_TEMPLATE_REFUSED = (
    p11x.GeneralError,
    p11x.AttributeReadOnly,
    p11x.AttributeTypeInvalid,
    p11x.AttributeValueInvalid,
    p11x.TemplateIncomplete,
    p11x.TemplateInconsistent,
    p11x.DomainParamsInvalid,
)


# -- what the token holds --------------------------------------------------------------


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


def list_slots(module: Module) -> list[SlotListing]:
    """Every slot holding a token, in slot order, blank ones included."""
    listed = []
    with module.lock, pkcs11_errors(f"listing the tokens of {module.path}"):
        for slot in module.lib.get_slots(token_present=True):
            try:
                token = slot.get_token()
            except (p11x.TokenNotPresent, p11x.TokenNotRecognised, p11x.DeviceRemoved):
                continue
            initialized = bool(token.flags & TokenFlag.TOKEN_INITIALIZED)
            desc = _describe(slot, token)
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


def _key_listing(desc: TokenDescription, session: Any, key: Any) -> KeyListing:
    uri = key_uri(desc, key)
    der: bytes | None = None
    try:
        public = read_public_key(session, key)
        kind = str(key_kind(public, uri.object or ""))
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except UnsupportedKeyType as error:
        kind = f"unusable: {error.cause}"
    return KeyListing(
        token=desc.label,
        label=uri.object or "",
        id=uri.id or b"",
        kind=kind,
        uri=str(uri),
        public_key_der=der,
    )


def _key_template(label: str | None, key_id: bytes | None) -> dict[Attribute, Any]:
    template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
    if label is not None:
        template[Attribute.LABEL] = label
    if key_id is not None:
        template[Attribute.ID] = key_id
    return template


def _sorted_keys(session: Any, label: str | None, key_id: bytes | None) -> list[Any]:
    def order(key: Any) -> tuple[bytes, str]:
        return (bytes(key[Attribute.ID] or b""), str(key[Attribute.LABEL] or ""))

    return sorted(session.get_objects(_key_template(label, key_id)), key=order)


def list_keys(
    module: Module, found: FoundToken, pin: str | None, uri: Pkcs11Uri
) -> list[KeyListing]:
    """The private keys on ``found`` that ``uri``'s object / id name (all if it names none)."""
    desc = found.description
    with (
        admin_session(module, found, pin) as session,
        pkcs11_errors("listing keys", desc.label),
    ):
        keys = _sorted_keys(session, uri.object, uri.id)
        return [_key_listing(desc, session, k) for k in keys]


def list_keys_without_login(module: Module, found: FoundToken, uri: Pkcs11Uri) -> list[KeyListing]:
    """The key pairs on ``found`` seen through their public objects: no login, no PIN spent.

    Used when several tokens could be meant: the configured PIN belongs to
    one of them, and trying it on the others would count towards their
    lock-out. A private key stored without its public half is not seen.
    """
    desc = found.description
    template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PUBLIC_KEY}
    if uri.object is not None:
        template[Attribute.LABEL] = uri.object
    if uri.id is not None:
        template[Attribute.ID] = uri.id
    listed = []
    with module.lock, pkcs11_errors("listing public keys", desc.label):
        session = found.token.open()
        try:
            for public in session.get_objects(template):
                listed.append(_listing_from_public(desc, public))
        finally:
            session.close()
    return sorted(listed, key=lambda k: (k.id, k.label))


def _listing_from_public(desc: TokenDescription, public: Any) -> KeyListing:
    uri = replace(key_uri(desc, public), type="private")
    der: bytes | None = None
    try:
        key_type = public[Attribute.KEY_TYPE]
        if key_type == KeyType.EC:
            key: Any = ec_public_key(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
        elif key_type == KeyType.RSA:
            n = int.from_bytes(public[Attribute.MODULUS], "big")
            e = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
            key = rsa.RSAPublicNumbers(e, n).public_key()
        else:
            raise UnsupportedKeyType(f"key type {getattr(key_type, 'name', key_type)}")
        kind = str(key_kind(key, uri.object or ""))
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except UnsupportedKeyType as error:
        kind = f"unusable: {error.cause}"
    except p11x.PKCS11Error:
        kind = "unknown (its public attributes are not readable)"
    return KeyListing(desc.label, uri.object or "", uri.id or b"", kind, str(uri), der)


# -- sessions --------------------------------------------------------------------------


class KeyTemplates(AttributeMapper):
    """python-pkcs11's templates, or (``only_given``) exactly the attributes we pass.

    python-pkcs11 fills every usage attribute (CKA_DECRYPT false, ...) into
    a key template; some modules refuse that (template 3 above).
    """

    def __init__(self) -> None:
        super().__init__()
        self.only_given = False

    def public_key_template(self, **kwargs: Any) -> dict[Attribute, Any]:
        if self.only_given:
            return {Attribute.CLASS: ObjectClass.PUBLIC_KEY}
        return dict(super().public_key_template(**kwargs))

    def private_key_template(self, **kwargs: Any) -> dict[Attribute, Any]:
        if self.only_given:
            return {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
        return dict(super().private_key_template(**kwargs))


@contextmanager
def admin_session(
    module: Module,
    found: FoundToken,
    pin: str | None,
    *,
    so_pin: str | None = None,
    templates: KeyTemplates | None = None,
) -> Iterator[Any]:
    """A read/write session on ``found``, logged in as the user (or the SO), under the lock.

    The PIN is tried once; a refused PIN is never retried (tokens count
    failures). A token that does not require a login gets no login.
    """
    desc = found.description
    with module.lock:
        mapper = templates or KeyTemplates()
        if so_pin is not None:
            session = _open(found, desc, mapper, so_pin=so_pin)
        elif desc.login_required:
            if not pin:
                raise MissingConfigValue(
                    f"token {desc.label!r} requires a login and no PIN was given",
                    "set device.cryptoki.pin, or pass --pin-file",
                )
            session = _open(found, desc, mapper, user_pin=pin)
        else:
            with pkcs11_errors("opening a session", desc.label):
                session = found.token.open(rw=True, attribute_mapper=mapper)
        try:
            yield session
        finally:
            try:
                session.close()
            except p11x.PKCS11Error as exc:
                log.debug("closing the admin session on %s: %r", desc.label, exc)


def _open(found: FoundToken, desc: TokenDescription, mapper: KeyTemplates, **login: str) -> Any:
    from edgeagent.errors import PinIncorrect

    try:
        with pkcs11_errors("logging in", desc.label):
            try:
                return found.token.open(rw=True, attribute_mapper=mapper, **login)
            except p11x.UserAlreadyLoggedIn:
                # Logged in already by this process (the signing session):
                # this session shares that login and must not log it out.
                return found.token.open(rw=True, attribute_mapper=mapper)
    except PinIncorrect as error:
        raise _with_attempts_left(found, error) from error.__cause__


# -- key pairs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedKey:
    entry: KeyListing
    reused: bool
    """True when a key with the label existed and was kept (no --force-new)."""


def new_key_id() -> bytes:
    return secrets.token_bytes(KEY_ID_BYTES)


Template = tuple[str, dict[Attribute, Any], dict[Attribute, Any], bool]
"""(name, public template, private template, usage left to the module)."""


def _templates(spec: KeySpec, label: str, key_id: bytes) -> list[Template]:
    """(name, public template, private template) in the order to try them."""
    common = {Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id}
    private = dict(common)
    private.update(
        {
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
        }
    )
    public = dict(common)
    public.update({Attribute.VERIFY: True, Attribute.PRIVATE: False})
    module_usage = ("usage left to the module", public, private, True)
    if spec.startswith("ec-"):
        params = encode_named_curve_parameters(_CURVES[spec])
        public[Attribute.EC_PARAMS] = params
        with_params = dict(private)
        with_params[Attribute.EC_PARAMS] = params
        return [
            ("standard (CKA_EC_PARAMS in the public template)", public, private, False),
            ("CKA_EC_PARAMS in both templates", public, with_params, False),
            module_usage,
        ]
    return [("standard", public, private, False), module_usage]


def _all_object_handles(session: Any) -> set[int]:
    return {obj.handle for obj in session.get_objects({})}


def generate_key_pair(
    session: Any,
    spec: KeySpec,
    label: str,
    key_id: bytes,
    mapper: KeyTemplates,
    templates: list[Template] | None = None,
) -> Any:
    """Generate the pair on the token (see the module docstring); the private key object.

    Call under the module's lock with a read/write, logged-in session opened
    with ``mapper`` (see :class:`KeyTemplates`).
    """
    attempts = templates if templates is not None else _templates(spec, label, key_id)
    algorithm, _, size = spec.partition("-")
    refusals = []
    for name, public, private, module_usage in attempts:
        before = _all_object_handles(session)
        mapper.only_given = module_usage
        try:
            if algorithm == "ec":
                _, private_key = session.generate_keypair(
                    KeyType.EC,
                    0,
                    public_template=public,
                    private_template=private,
                    store=True,
                    capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                    mechanism=Mechanism.EC_KEY_PAIR_GEN,
                )
            else:
                _, private_key = session.generate_keypair(
                    KeyType.RSA,
                    int(size),
                    public_template=public,
                    private_template=private,
                    store=True,
                    capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                )
            return private_key
        except _TEMPLATE_REFUSED as exc:
            refusals.append(f"{name}: {ckr_name(exc)}")
            _destroy_leftovers(session, before)
            log.info("the module refused the %s key template (%s)", name, ckr_name(exc))
        except p11x.PKCS11Error:
            _destroy_leftovers(session, before)
            raise
        finally:
            mapper.only_given = False
    raise TokenOperationFailed(
        f"the token refused every {spec} key template ({'; '.join(refusals)})",
        "the module may not support this key type: try another --type",
    )


def _destroy_leftovers(session: Any, before: set[int]) -> None:
    for obj in session.get_objects({}):
        if obj.handle not in before:
            log.info("removing an object a refused key generation left behind")
            try:
                obj.destroy()
            except p11x.PKCS11Error as exc:
                log.warning("could not remove a half-made key object: %s", ckr_name(exc))


def _in_preferred_order(module: Module, templates: list[Template]) -> list[Template]:
    if "tpm2" in module.path.name.lower() or "tpm2" in str(module.lib.manufacturer_id).lower():
        return sorted(templates, key=lambda template: not template[3])
    return templates


def create_key(
    module: Module,
    found: FoundToken,
    pin: str | None,
    spec: KeySpec,
    label: str = DEFAULT_KEY_LABEL,
    key_id: bytes | None = None,
    *,
    force_new: bool = False,
) -> CreatedKey:
    """Generate a key pair in ``found``; reuse one labelled ``label`` unless ``force_new``."""
    if spec not in KEY_SPECS:
        raise UnsupportedKeyType(f"key type {spec!r}", f"use one of: {', '.join(KEY_SPECS)}")
    desc = found.description
    mapper = KeyTemplates()
    with admin_session(module, found, pin, templates=mapper) as session:
        with pkcs11_errors("looking for an existing key", desc.label):
            existing = _sorted_keys(session, label, None)
        if existing and not force_new:
            with pkcs11_errors("reading the existing key", desc.label):
                return CreatedKey(_key_listing(desc, session, existing[0]), reused=True)
        wanted_id = key_id if key_id is not None else new_key_id()
        with pkcs11_errors("looking for a key with this id", desc.label):
            taken = _sorted_keys(session, None, wanted_id)
        if taken:
            raise TokenInUse(
                f"token {desc.label!r} already has a key with id {wanted_id.hex()} "
                f"({key_uri(desc, taken[0])})",
                "choose another --id, or leave --id out for a random one",
            )
        with pkcs11_errors(f"generating a {spec} key pair", desc.label):
            templates = _in_preferred_order(module, _templates(spec, label, wanted_id))
            private_key = generate_key_pair(session, spec, label, wanted_id, mapper, templates)
            return CreatedKey(_key_listing(desc, session, private_key), reused=False)


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
        keys = _sorted_keys(session, label, key_id)
        if not keys:
            raise KeyNotFound(
                f"token {desc.label!r} has no private key with {_naming(label, key_id)}",
                "`agent hsm list-keys` shows the keys there are",
            )
        for key in keys:
            ident = key[Attribute.ID]
            twins: list[tuple[ObjectClass, Any]] = []
            for cls in (ObjectClass.PUBLIC_KEY, ObjectClass.CERTIFICATE):
                template: dict[Attribute, Any] = {Attribute.CLASS: cls}
                if ident:
                    template[Attribute.ID] = ident
                else:
                    template[Attribute.LABEL] = key[Attribute.LABEL]
                twins.extend((cls, obj) for obj in session.get_objects(template))
            destroyed.append(f"private key {key_uri(desc, key)}")
            key.destroy()
            for cls, obj in twins:
                kind = "public key" if cls == ObjectClass.PUBLIC_KEY else "certificate"
                destroyed.append(f"{kind} with id {bytes(ident or b'').hex() or '-'}")
                obj.destroy()
    return destroyed


def _naming(label: str | None, key_id: bytes | None) -> str:
    parts = []
    if label is not None:
        parts.append(f"label {label!r}")
    if key_id is not None:
        parts.append(f"id {key_id.hex()}")
    return " and ".join(parts)


# -- PINs ---------------------------------------------------------------------------------------


def change_pin(module: Module, found: FoundToken, old_pin: str, new_pin: str) -> None:
    """C_SetPIN on the user PIN, logged in with ``old_pin`` (tried once)."""
    desc = found.description
    with (
        admin_session(module, found, old_pin) as session,
        pkcs11_errors("changing the user PIN", desc.label),
    ):
        session.set_pin(old_pin, new_pin)


def reset_pin(module: Module, found: FoundToken, so_pin: str, new_pin: str) -> None:
    """C_InitPIN as the security officer: sets (and unlocks) the user PIN."""
    desc = found.description
    with (
        admin_session(module, found, None, so_pin=so_pin) as session,
        pkcs11_errors("setting the user PIN with the SO PIN", desc.label),
    ):
        session.init_pin(new_pin)


# -- initialising a token -------------------------------------------------------------------------


@dataclass(frozen=True)
class InitResult:
    token: SlotListing
    created: bool
    """False when a usable token with the label was there already (nothing done)."""
    note: str = ""


def _public_objects(found: FoundToken) -> int:
    session = found.token.open()  # a public session: no login, no PIN attempt
    try:
        return sum(1 for _ in session.get_objects({}))
    finally:
        session.close()


def init_token(
    module: Module,
    label: str,
    so_pin: str,
    user_pin: str,
    *,
    slot_id: int | None = None,
    reinit: bool = False,
    referenced_by: Callable[[TokenDescription], list[str]] = lambda _desc: [],
) -> InitResult:
    """Initialise a token labelled ``label`` and set its user PIN (see the module docstring).

    - a usable token with that label exists: nothing is done (``created`` False);
    - one exists whose user PIN was never set: C_InitPIN with the SO PIN;
    - otherwise the first blank slot (or ``slot_id``) is initialised. An
      initialised token is only re-initialised with ``reinit`` and when it
      is not in use; ``referenced_by`` names the configured key URIs that
      point at a token.
    """
    if not label or len(label.encode()) > 32:
        raise TokenOperationFailed(
            f"token label {label!r} must be 1 to 32 bytes", "choose a shorter --label"
        )
    slots = list_slots(module)
    same = [s for s in slots if s.initialized and s.label == label]
    if same and slot_id is None and not reinit:
        slot = same[0]
        if slot.user_pin_initialized:
            return InitResult(slot, created=False)
        found = _found(module, slot.slot_id)
        reset_pin(module, found, so_pin, user_pin)
        return InitResult(_slot(module, slot.slot_id), created=True, note="user PIN set")
    target = _choose_slot(slots, label, slot_id, reinit)
    if target.initialized:
        found = _found(module, target.slot_id)
        _refuse_if_in_use(found, referenced_by)
    _c_init_token(module, target.slot_id, so_pin, label)
    found = _found(module, target.slot_id)
    reset_pin(module, found, so_pin, user_pin)
    return InitResult(_slot(module, target.slot_id), created=True)


def _choose_slot(
    slots: list[SlotListing], label: str, slot_id: int | None, reinit: bool
) -> SlotListing:
    if slot_id is not None:
        chosen = [s for s in slots if s.slot_id == slot_id]
        if not chosen:
            raise TokenOperationFailed(
                f"no token present in slot {slot_id}", "`agent hsm list-tokens` lists the slots"
            )
        slot = chosen[0]
        if slot.initialized and not reinit:
            raise TokenInUse(
                f"slot {slot_id} already holds token {slot.label!r}",
                "pass --reinit to erase and re-initialise it (refused while it is in use)",
            )
        return slot
    if reinit:
        same = [s for s in slots if s.initialized and s.label == label]
        if same:
            return same[0]
    blank = [s for s in slots if not s.initialized]
    if not blank:
        raise TokenOperationFailed(
            "no free slot: every token of the module is initialised",
            "for a TPM: " + _TPM_HINT + "; for SoftHSM2 check its token directory "
            "(it always offers one free slot); for a smart card insert a blank one",
        )
    return blank[0]


def _refuse_if_in_use(
    found: FoundToken, referenced_by: Callable[[TokenDescription], list[str]]
) -> None:
    desc = found.description
    with pkcs11_errors("looking at the token's objects", desc.label):
        objects = _public_objects(found)
    references = referenced_by(desc)
    reasons = []
    if objects:
        reasons.append(f"it holds {objects} object(s) visible without login (keys, certificates)")
    if references:
        reasons.append("it is named by " + ", ".join(references))
    if reasons:
        raise TokenInUse(
            f"token {desc.label!r} is in use and was not re-initialised: {'; '.join(reasons)}",
            "delete its keys (`agent hsm delete-key`) and unset the key URIs first, "
            "or initialise another slot",
        )


def _found(module: Module, slot_id: int) -> FoundToken:
    with module.lock, pkcs11_errors("opening the slot"):
        for slot in module.lib.get_slots(token_present=True):
            if int(slot.slot_id) == slot_id:
                token = slot.get_token()
                return FoundToken(_describe(slot, token), token)
    raise TokenOperationFailed(f"slot {slot_id} went away")


def _slot(module: Module, slot_id: int) -> SlotListing:
    return next(s for s in list_slots(module) if s.slot_id == slot_id)


def names_token(uri: Pkcs11Uri, desc: TokenDescription) -> bool:
    """Does ``uri`` point at this token? A URI naming no token points at every one."""
    return token_matches(desc, uri)


def names_key(uri: Pkcs11Uri, key: Pkcs11Uri) -> bool:
    """Does the configured ``uri`` name the key whose full URI is ``key``?

    Only a URI naming an object or id names a key. An attribute the key's
    URI lacks cannot be compared and counts as a match: when in doubt, a
    key is treated as referenced.
    """
    if not uri.names_key or uri.type not in (None, "private"):
        return False
    for field in (*Pkcs11Uri.TOKEN_FIELDS, "object", "id"):
        wanted, actual = getattr(uri, field), getattr(key, field)
        if wanted is None or actual is None:
            continue
        if isinstance(wanted, str):
            wanted = wanted.rstrip("\0").rstrip()
        if wanted != actual:
            return False
    return True


# python-pkcs11 0.10 has no C_InitToken; call it through the module's own
# function list. dlopen of the already loaded library returns the same
# handle, so this is the instance python-pkcs11 initialised.
class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


_CK_RV = ctypes.c_ulong
_InitTokenFn = ctypes.CFUNCTYPE(
    _CK_RV, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p
)
_FUNCTIONS_BEFORE_INIT_TOKEN = (
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
)


class _FunctionList(ctypes.Structure):
    _fields_ = (
        ("version", _Version),
        *((name, ctypes.c_void_p) for name in _FUNCTIONS_BEFORE_INIT_TOKEN),
        ("C_InitToken", _InitTokenFn),
    )


_CKR_NAMES = {
    0x54: "CKR_FUNCTION_NOT_SUPPORTED",
    0xA0: "CKR_PIN_INCORRECT",
    0xA4: "CKR_PIN_LOCKED",
    0xA2: "CKR_PIN_LEN_RANGE",
    0xB6: "CKR_SESSION_EXISTS",
    0xE0: "CKR_TOKEN_NOT_PRESENT",
    0xE2: "CKR_TOKEN_WRITE_PROTECTED",
    0x05: "CKR_GENERAL_ERROR",
    0x06: "CKR_FUNCTION_FAILED",
    0x07: "CKR_ARGUMENTS_BAD",
}


def _c_init_token(module: Module, slot_id: int, so_pin: str, label: str) -> None:
    from edgeagent.errors import PinIncorrect, PinLocked

    with module.lock:
        library = ctypes.CDLL(os.path.realpath(module.path))
        get_list = library.C_GetFunctionList
        table = ctypes.POINTER(_FunctionList)()
        get_list.argtypes = (ctypes.POINTER(ctypes.POINTER(_FunctionList)),)
        get_list.restype = _CK_RV
        rv = get_list(ctypes.byref(table))
        if rv != 0:
            raise TokenOperationFailed(f"C_GetFunctionList of {module.path} failed (0x{rv:x})")
        pin = so_pin.encode()
        padded = label.encode().ljust(32, b" ")
        rv = table.contents.C_InitToken(slot_id, pin, len(pin), padded)
    if rv == 0:
        return
    name = _CKR_NAMES.get(rv, f"CKR 0x{rv:x}")
    if rv == 0xA0:
        raise PinIncorrect(
            f"the SO PIN is incorrect for the token in slot {slot_id} ({name}); it was not retried",
            "each wrong attempt counts towards the token's lock-out",
        )
    if rv == 0xA4:
        raise PinLocked(f"the SO PIN of the token in slot {slot_id} is locked ({name})")
    fix = "see the module's documentation for initialising tokens"
    if rv in (0x54, 0x05, 0x06) or "tpm2" in module.path.name.lower():
        fix = _TPM_HINT if "tpm2" in module.path.name.lower() else fix
    raise TokenOperationFailed(f"initialising the token in slot {slot_id} failed ({name})", fix)


# -- which token -----------------------------------------------------------------------------------


def choose_token(module: Module, uri: Pkcs11Uri | None) -> FoundToken:
    """The one token ``uri`` means: the only one, or the one it names.

    TokenAmbiguous (listing every candidate's URI) when several could be
    meant; TokenNotFound / TokenNotInitialized when there is none.
    """
    uri = uri or Pkcs11Uri()
    tokens = find_tokens(module, uri)
    if len(tokens) > 1:
        listing = "\n".join("    " + t.description.summary() for t in tokens)
        raise TokenAmbiguous(
            f"{len(tokens)} tokens could be meant:\n{listing}",
            "name one: pass --token-uri with one of the URIs above",
        )
    return tokens[0]


class TokenAdministration:
    """Token administration with the module loaded in this process (module mode).

    The same operations as the signing service offers over its socket
    (``edgeagent.protocol.admin``), so the CLI need not care which it has.
    """

    def __init__(self, module: Module, pin: str | None) -> None:
        self.module = module
        self._pin = pin

    @property
    def location(self) -> str:
        return f"PKCS#11 module {self.module.path}"

    def list_tokens(self) -> list[SlotListing]:
        return list_slots(self.module)

    def list_keys(self, uri: Pkcs11Uri | None) -> list[KeyListing]:
        """Logged in when one token matches; else from public objects (no PIN spent)."""
        uri = uri or Pkcs11Uri()
        tokens = find_tokens(self.module, uri)
        if len(tokens) == 1:
            return list_keys(self.module, tokens[0], self._pin, uri)
        keys: list[KeyListing] = []
        for found in tokens:
            keys.extend(list_keys_without_login(self.module, found, uri))
        return keys

    def create_key(
        self,
        uri: Pkcs11Uri | None,
        spec: KeySpec,
        label: str,
        key_id: bytes | None,
        force_new: bool,
    ) -> CreatedKey:
        found = choose_token(self.module, uri)
        return create_key(self.module, found, self._pin, spec, label, key_id, force_new=force_new)

    def delete_key(
        self, uri: Pkcs11Uri | None, label: str | None, key_id: bytes | None
    ) -> list[str]:
        return delete_key(self.module, choose_token(self.module, uri), self._pin, label, key_id)

    def close(self) -> None:
        pass

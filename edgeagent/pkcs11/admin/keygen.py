"""Making a key pair on a token (`agent hsm create-key`): templates and fallbacks.

    created = create_key(module, found, "123456", "ec-p256", "device-key")
    created.entry.uri          # what to paste into device.key_uri

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
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

import pkcs11.exceptions as p11x
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from edgeagent.errors import TokenInUse, TokenOperationFailed, UnsupportedKeyType
from edgeagent.pkcs11.admin.listing import key_listing
from edgeagent.pkcs11.admin.session import KeyTemplates, admin_session
from edgeagent.pkcs11.keyspecs import DEFAULT_KEY_LABEL, KEY_SPECS, KeySpec
from edgeagent.pkcs11.listings import CreatedKey
from edgeagent.pkcs11.module import Module, ckr_name, pkcs11_errors
from edgeagent.pkcs11.objects import find_keys, key_uri
from edgeagent.pkcs11.tokens import FoundToken

log = logging.getLogger("edgeagent.pkcs11")

KEY_ID_BYTES = 8

_CURVES = {"ec-p256": "secp256r1", "ec-p384": "secp384r1"}
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


@dataclass(frozen=True)
class KeyPairTemplate:
    """One way to ask a module for a key pair (see the module docstring)."""

    name: str
    """For messages: "standard (CKA_EC_PARAMS in the public template)", ..."""
    public: dict[Attribute, Any]
    private: dict[Attribute, Any]
    usage_left_to_module: bool
    """Pass only these attributes: no usage attributes filled in by python-pkcs11."""


def new_key_id() -> bytes:
    return secrets.token_bytes(KEY_ID_BYTES)


def key_pair_templates(spec: KeySpec, label: str, key_id: bytes) -> list[KeyPairTemplate]:
    """The templates for ``spec``, in the order to try them."""
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
    module_usage = KeyPairTemplate("usage left to the module", public, private, True)
    if not spec.startswith("ec-"):
        return [KeyPairTemplate("standard", public, private, False), module_usage]
    params = encode_named_curve_parameters(_CURVES[spec])
    public[Attribute.EC_PARAMS] = params
    with_params = dict(private)
    with_params[Attribute.EC_PARAMS] = params
    return [
        KeyPairTemplate("standard (CKA_EC_PARAMS in the public template)", public, private, False),
        KeyPairTemplate("CKA_EC_PARAMS in both templates", public, with_params, False),
        module_usage,
    ]


def generate_key_pair(
    session: Any,
    spec: KeySpec,
    label: str,
    key_id: bytes,
    mapper: KeyTemplates,
    templates: list[KeyPairTemplate] | None = None,
) -> Any:
    """Generate the pair on the token (see the module docstring); the private key object.

    Call under the module's lock with a read/write, logged-in session opened
    with ``mapper`` (see :class:`KeyTemplates`).
    """
    attempts = templates if templates is not None else key_pair_templates(spec, label, key_id)
    algorithm, _, size = spec.partition("-")
    mechanism: dict[str, Mechanism] = {}
    if algorithm == "ec":
        key_type, bits, mechanism = KeyType.EC, 0, {"mechanism": Mechanism.EC_KEY_PAIR_GEN}
    else:
        key_type, bits = KeyType.RSA, int(size)
    refusals = []
    for template in attempts:
        before = _all_object_handles(session)
        mapper.only_given = template.usage_left_to_module
        try:
            _, private_key = session.generate_keypair(
                key_type,
                bits,
                public_template=template.public,
                private_template=template.private,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                **mechanism,
            )
            return private_key
        except _TEMPLATE_REFUSED as exc:
            refusals.append(f"{template.name}: {ckr_name(exc)}")
            _destroy_leftovers(session, before)
            log.info("the module refused the %s key template (%s)", template.name, ckr_name(exc))
        except p11x.PKCS11Error:
            _destroy_leftovers(session, before)
            raise
        finally:
            mapper.only_given = False
    raise TokenOperationFailed(
        f"the token refused every {spec} key template ({'; '.join(refusals)})",
        "the module may not support this key type: try another --type",
    )


def _all_object_handles(session: Any) -> set[int]:
    return {obj.handle for obj in session.get_objects({})}


def _destroy_leftovers(session: Any, before: set[int]) -> None:
    for obj in session.get_objects({}):
        if obj.handle not in before:
            log.info("removing an object a refused key generation left behind")
            try:
                obj.destroy()
            except p11x.PKCS11Error as exc:
                log.warning("could not remove a half-made key object: %s", ckr_name(exc))


def _in_preferred_order(module: Module, templates: list[KeyPairTemplate]) -> list[KeyPairTemplate]:
    if "tpm2" in module.path.name.lower() or "tpm2" in str(module.lib.manufacturer_id).lower():
        return sorted(templates, key=lambda template: not template.usage_left_to_module)
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
            existing = find_keys(session, ObjectClass.PRIVATE_KEY, label)
        if existing and not force_new:
            with pkcs11_errors("reading the existing key", desc.label):
                return CreatedKey(key_listing(desc, session, existing[0]), reused=True)
        wanted_id = key_id if key_id is not None else new_key_id()
        with pkcs11_errors("looking for a key with this id", desc.label):
            taken = find_keys(session, ObjectClass.PRIVATE_KEY, key_id=wanted_id)
        if taken:
            raise TokenInUse(
                f"token {desc.label!r} already has a key with id {wanted_id.hex()} "
                f"({key_uri(desc, taken[0])})",
                "choose another --id, or leave --id out for a random one",
            )
        with pkcs11_errors(f"generating a {spec} key pair", desc.label):
            templates = _in_preferred_order(module, key_pair_templates(spec, label, wanted_id))
            private_key = generate_key_pair(session, spec, label, wanted_id, mapper, templates)
            return CreatedKey(key_listing(desc, session, private_key), reused=False)

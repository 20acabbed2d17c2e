"""Token administration: initialise tokens, make and delete key pairs, change PINs.

    module = load_module(Path("/usr/lib/softhsm/libsofthsm2.so"))
    init_token(module, "my-token", so_pin="12345678", user_pin="123456")
    created = create_key(module, choose_token(module, uri), "123456", "ec-p256", "device-key")
    created.entry.uri          # what to paste into device.key_uri
    delete_key(module, found, "123456", label="device-key", key_id=None)

One concern a module, as thin-edge's ``tedge-p11`` splits its crate:

    session.py         which token a command means; a read/write session on it
    listing.py         slots and keys (`agent hsm list-tokens`, `list-keys`)
    keygen.py          key pairs: templates, fallbacks, what a key may do
    deletion.py        a key pair with its public key and certificate
    pin_change.py      C_SetPIN, and C_InitPIN as the security officer
    init_token.py      initialising a token, never one in use
    c_init_token.py    C_InitToken through ctypes (python-pkcs11 has none)
    administration.py  TokenAdministration: the operations the signing socket offers too

The values these report (``SlotListing``, ``KeyListing``, ``CreatedKey``) live
in ``edgeagent.pkcs11.listings``, which loads no python-pkcs11; URI matching
(``names_key``, ``names_token``) in ``edgeagent.pkcs11.uri``. Both are
re-exported here for callers that already need this package.
"""

from edgeagent.pkcs11.admin.administration import TokenAdministration
from edgeagent.pkcs11.admin.deletion import delete_key
from edgeagent.pkcs11.admin.init_token import InitResult, init_token
from edgeagent.pkcs11.admin.keygen import (
    KEY_ID_BYTES,
    KeyPairTemplate,
    create_key,
    generate_key_pair,
    key_pair_templates,
    new_key_id,
)
from edgeagent.pkcs11.admin.listing import (
    key_listing,
    list_keys,
    list_keys_without_login,
    list_slots,
)
from edgeagent.pkcs11.admin.pin_change import change_pin, reset_pin
from edgeagent.pkcs11.admin.session import KeyTemplates, admin_session, choose_token
from edgeagent.pkcs11.keyspecs import DEFAULT_KEY_LABEL, DEFAULT_KEY_SPEC, KEY_SPECS, KeySpec
from edgeagent.pkcs11.listings import CreatedKey, KeyListing, SlotListing
from edgeagent.pkcs11.uri import names_key, names_token

__all__ = [
    "DEFAULT_KEY_LABEL",
    "DEFAULT_KEY_SPEC",
    "KEY_ID_BYTES",
    "KEY_SPECS",
    "CreatedKey",
    "InitResult",
    "KeyListing",
    "KeyPairTemplate",
    "KeySpec",
    "KeyTemplates",
    "SlotListing",
    "TokenAdministration",
    "admin_session",
    "change_pin",
    "choose_token",
    "create_key",
    "delete_key",
    "generate_key_pair",
    "init_token",
    "key_listing",
    "key_pair_templates",
    "list_keys",
    "list_keys_without_login",
    "list_slots",
    "names_key",
    "names_token",
    "new_key_id",
    "reset_pin",
]

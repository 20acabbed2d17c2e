"""`agent hsm create-key|list-keys|delete-key`, and the new key of `agent cert renew --new-key`.

    admin = open_admin(config, pins)
    outcome = create_key(config_dir, admin, KeyRequest(spec="ec-p256"), pins)
    outcome.created.entry.uri      # printed on stdout
    outcome.wrote                  # device.key_uri updated?

The configuration rules are in :mod:`edgeagent.hsm.policy`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from edgeagent.certs.commands import current_key_spec
from edgeagent.config import load_config, set_value
from edgeagent.errors import (
    FileWriteError,
    KeyInUse,
    KeyNotFound,
    TokenError,
    TokenNotFound,
    TokenNotInitialized,
    UsageError,
)
from edgeagent.hsm import DEFAULT_TOKEN_LABEL
from edgeagent.hsm.backend import TokenAdmin
from edgeagent.hsm.policy import PinSource, configured_key_uris, open_admin
from edgeagent.hsm.token_setup import init_token
from edgeagent.pkcs11 import admin as p11admin
from edgeagent.pkcs11.uri import Pkcs11Uri

# -- create-key ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRequest:
    spec: p11admin.KeySpec = p11admin.DEFAULT_KEY_SPEC
    label: str = p11admin.DEFAULT_KEY_LABEL
    key_id: bytes | None = None
    token_uri: Pkcs11Uri | None = None
    force_new: bool = False
    cloud: str | None = None
    public_key_path: Path | None = None
    write_config: bool = True
    token_label: str = DEFAULT_TOKEN_LABEL
    """The label of the token initialised when there is none (module mode)."""


@dataclass(frozen=True)
class CreateOutcome:
    created: p11admin.CreatedKey
    config_key: str
    wrote: bool
    """True when config_key now holds the key's URI (written now)."""
    suggestion: str | None
    """The `agent config set` command to run, when config_key was left alone."""
    note: str = ""


def create_key(
    config_dir: Path,
    admin: TokenAdmin,
    request: KeyRequest,
    pins: PinSource | None = None,
    notify: Callable[[str], None] = lambda _: None,
) -> CreateOutcome:
    """Make (or reuse) the key; write its URI to the configuration (module docstring).

    With ``pins``, in module mode, a token is initialised when there is none
    at all (``notify`` says so before the SO PIN is asked for).
    """
    config = load_config(config_dir)
    names_token = request.token_uri is not None and request.token_uri.names_token
    try:
        created = admin.create_key(
            request.token_uri, request.spec, request.label, request.key_id, request.force_new
        )
    except (TokenNotInitialized, TokenNotFound):
        # "no token yet": initialise one, unless the user named one we did not find.
        socket = config.device.cryptoki.mode == "socket"
        if pins is None or socket or names_token or not _no_token_at_all(admin):
            raise
        notify(f"no token yet: initialising one labelled {request.token_label!r}")
        init_token(config_dir, request.token_label, pins.so_pin(), pins.user_pin())
        created = admin.create_key(
            request.token_uri, request.spec, request.label, request.key_id, request.force_new
        )
    if request.public_key_path is not None:
        write_public_key(created.entry, request.public_key_path)
    config_key = f"{request.cloud}.device.key_uri" if request.cloud else "device.key_uri"
    if not request.write_config:
        return CreateOutcome(created, config_key, False, _set_command(config_key, created))
    current = config.cloud(request.cloud).device.key_uri if request.cloud else config.device.key_uri
    new_uri = Pkcs11Uri.parse(created.entry.uri)
    if current is None:
        set_value(config_dir, config_key, created.entry.uri)
        return CreateOutcome(created, config_key, True, None)
    current_uri = Pkcs11Uri.parse(current)
    if current_uri.names_key and p11admin.names_key(current_uri, new_uri):
        return CreateOutcome(created, config_key, False, None, f"{config_key} names it already")
    if _names_existing_key(admin, current_uri, new_uri):
        return CreateOutcome(
            created,
            config_key,
            False,
            _set_command(config_key, created),
            f"{config_key} names another key that exists ({current}); it was left as it is",
        )
    set_value(config_dir, config_key, created.entry.uri)
    return CreateOutcome(
        created, config_key, True, None, f"replaced {current}, which names no existing key"
    )


def _set_command(config_key: str, created: p11admin.CreatedKey) -> str:
    return f'agent config set {config_key} "{created.entry.uri}"'


def _no_token_at_all(admin: TokenAdmin) -> bool:
    return not any(slot.initialized for slot in admin.list_tokens())


def _names_existing_key(admin: TokenAdmin, current: Pkcs11Uri, new: Pkcs11Uri) -> bool:
    try:
        keys = admin.list_keys(replace(current, type=None, pin_value=None, pin_source=None))
    except TokenError:
        return False
    return any(Pkcs11Uri.parse(k.uri) != new for k in keys)


def write_public_key(key: p11admin.KeyListing, path: Path) -> None:
    if key.public_key_der is None:
        raise KeyNotFound(
            f"the public half of {key.uri} cannot be read from the token",
            "store the public key on the token with the same CKA_ID",
        )
    public = serialization.load_der_public_key(key.public_key_der)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        path.write_bytes(pem)
    except OSError as error:
        raise FileWriteError(
            f"cannot write the public key to {path}: {error.strerror}",
            "choose a writable --public-key path",
        ) from error


def create_renewal_key(
    config_dir: Path,
    cloud: str,
    pins: PinSource,
    *,
    spec: p11admin.KeySpec | None = None,
    label: str | None = None,
) -> p11admin.CreatedKey:
    """`agent cert renew --new-key`: a new key beside the current one, config untouched.

    Of the current certificate's key type unless ``spec``, labelled
    ``device-key-<UTC timestamp>`` unless ``label``, on the token the
    current key URI names (else the only token).
    """
    config = load_config(config_dir)
    spec = spec or current_key_spec(config_dir, cloud)
    label = label or f"device-key-{datetime.datetime.now(datetime.UTC):%Y%m%d%H%M%S}"
    key_uri = config.identity(cloud).key_uri
    token_uri = Pkcs11Uri.parse(key_uri).token_part() if key_uri else None
    request = KeyRequest(
        spec=spec, label=label, token_uri=token_uri, force_new=True, write_config=False
    )
    with open_admin(config, pins) as admin:
        return create_key(config_dir, admin, request).created


# -- list ---------------------------------------------------------------------------------


def key_filter(uri: Pkcs11Uri | None, label: str | None, key_id: bytes | None) -> Pkcs11Uri | None:
    """The URI to list or delete with: ``uri`` narrowed by a label and an id."""
    if uri is None and label is None and key_id is None:
        return None
    base = uri or Pkcs11Uri()
    return replace(
        base,
        object=label if label is not None else base.object,
        id=key_id if key_id is not None else base.id,
    )


# -- delete-key ---------------------------------------------------------------------------


Confirm = Callable[[list[p11admin.KeyListing]], bool]


def delete_key(
    config_dir: Path,
    admin: TokenAdmin,
    token_uri: Pkcs11Uri | None,
    label: str | None,
    key_id: bytes | None,
    *,
    force: bool = False,
    confirm: Confirm | None = None,
) -> list[str] | None:
    """Delete the key named by label / id; None when ``confirm`` said no."""
    wanted = key_filter(token_uri, label, key_id)
    if wanted is None or not wanted.names_key:
        raise UsageError(
            "delete-key needs the key's label or id", "pass --label or --id (see list-keys)"
        )
    keys = admin.list_keys(wanted)
    if not keys:
        raise KeyNotFound(
            f"no private key matches {wanted}", "`agent hsm list-keys` shows the keys there are"
        )
    config = load_config(config_dir)
    uris = configured_key_uris(config)
    references = [
        f"{name} ({uri})"
        for name, uri in uris.items()
        for key in keys
        if p11admin.names_key(uri, Pkcs11Uri.parse(key.uri))
    ]
    if references and not force:
        raise KeyInUse(
            f"not deleted: the key is configured as {', '.join(references)}",
            "point the key URI elsewhere first, or pass --force to delete it anyway",
        )
    if confirm is not None and not confirm(keys):
        return None
    if not wanted.names_token:
        # Found on one token: delete there, rather than asking which token.
        holders = {Pkcs11Uri.parse(k.uri).token_part() for k in keys}
        if len(holders) == 1:
            wanted = replace(holders.pop(), object=wanted.object, id=wanted.id)
    return admin.delete_key(wanted, wanted.object, wanted.id)

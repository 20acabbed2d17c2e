"""What each `agent hsm` command does; the CLI only parses and prints.

    admin = open_admin(config, pins)   # socket mode: no PIN; module mode: pins.user_pin()
    outcome = create_key(config_dir, admin, KeyRequest(spec="ec-p256"), pins)
    outcome.created.entry.uri      # printed on stdout
    outcome.wrote                  # device.key_uri updated?

``pins`` is how the caller gets a PIN when the work needs one (a file, a
variable, a prompt: the CLI's ``pin_input``); which PIN is needed, and
whether any is, is decided here. python-pkcs11 is imported inside the
functions that load a module: socket mode never loads it.

Configuration rules:

- ``create-key`` writes the new key's URI to ``device.key_uri`` (or
  ``<cloud>.device.key_uri``) unless that already names *another key that
  exists*; then it leaves it and hands back the ``agent config set``
  command instead (``suggestion``).
- ``delete-key`` refuses a key that any configured key URI
  (``device.key_uri``, ``<cloud>.device.key_uri``, ``device.cryptoki.uri``)
  names, unless forced.
- ``init`` refuses to re-initialise a token a configured key URI points at.
  It stores the user PIN as ``device.cryptoki.pin`` when none is set, and
  ``change-pin`` keeps ``device.cryptoki.pin`` in step with the token.
- ``init`` and ``change-pin`` need the token itself (module mode): both
  carry PINs, and in socket mode the PIN is the signing service's own
  setting; run them with the service's configuration.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization

from edgeagent.certs.commands import current_key_spec
from edgeagent.config import AgentConfig, get, load_config, set_value
from edgeagent.errors import (
    AgentError,
    ConfigError,
    FileWriteError,
    KeyInUse,
    KeyNotFound,
    TokenError,
    TokenNotFound,
    TokenNotInitialized,
    UsageError,
)
from edgeagent.hsm import DEFAULT_TOKEN_LABEL
from edgeagent.hsm.backend import TokenAdmin, open_token_admin
from edgeagent.pkcs11 import admin as p11admin
from edgeagent.pkcs11.tokens import TokenDescription
from edgeagent.pkcs11.uri import Pkcs11Uri

SOCKET_MODE_FIX = (
    "run it where the token is configured, as the signing service's user: "
    "agent --config-dir /etc/agent-p11-server hsm {command} ..., "
    "then restart agent-p11-server"
)


class PinSource(Protocol):
    """Where the PINs come from, asked only when the work needs them."""

    def user_pin(self, *, confirm: bool = False) -> str: ...

    def so_pin(self) -> str: ...

    def new_pin(self) -> str: ...


def open_admin(config: AgentConfig, pins: PinSource) -> TokenAdmin:
    """The token's administration; in socket mode the service logs in with its own PIN."""
    if config.device.cryptoki.mode == "socket":
        return open_token_admin(config, None)
    return open_token_admin(config, pins.user_pin())


def token_part(uri: Pkcs11Uri) -> Pkcs11Uri:
    """The URI with only its token attributes: the token a key URI's key lives on."""
    return Pkcs11Uri(**{f: getattr(uri, f) for f in Pkcs11Uri.TOKEN_FIELDS})


def configured_key_uris(config: AgentConfig) -> dict[str, Pkcs11Uri]:
    """Every configured key URI by its key name (device.key_uri, c8y.device.key_uri, ...)."""
    found: dict[str, str | None] = {
        "device.key_uri": config.device.key_uri,
        "device.cryptoki.uri": config.device.cryptoki.uri,
    }
    for cloud in config.cloud_names():
        found[f"{cloud}.device.key_uri"] = config.cloud(cloud).device.key_uri
    parsed = {}
    for name, text in found.items():
        if text:
            try:
                parsed[name] = Pkcs11Uri.parse(text)
            except TokenError:
                continue  # a broken URI names nothing; `agent doctor` reports it
    return parsed


def require_module_mode(config: AgentConfig, command: str) -> None:
    if config.device.cryptoki.mode == "socket":
        raise ConfigError(
            f"`agent hsm {command}` needs the token itself, and device.cryptoki.mode is "
            "'socket': the PINs belong to the signing service, not to this agent",
            SOCKET_MODE_FIX.format(command=command),
        )


# -- init ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitOutcome:
    result: p11admin.InitResult
    pin_stored: bool
    """True when device.cryptoki.pin was unset and now holds the user PIN."""


def init(
    config_dir: Path,
    label: str,
    pins: PinSource,
    *,
    slot_id: int | None = None,
    reinit: bool = False,
) -> InitOutcome:
    """`agent hsm init`: module mode checked before any PIN is asked for."""
    require_module_mode(load_config(config_dir), "init")
    so_pin = pins.so_pin()
    user_pin = pins.user_pin(confirm=True)
    return init_token(config_dir, label, so_pin, user_pin, slot_id=slot_id, reinit=reinit)


def init_token(
    config_dir: Path,
    label: str,
    so_pin: str,
    user_pin: str,
    *,
    slot_id: int | None = None,
    reinit: bool = False,
) -> InitOutcome:
    from edgeagent.pkcs11.module import load_module
    from edgeagent.pkcs11.modules import module_for

    config = load_config(config_dir)
    require_module_mode(config, "init")
    module = load_module(module_for(None, config.device.cryptoki.module_path))
    uris = configured_key_uris(config)

    def referenced_by(desc: TokenDescription) -> list[str]:
        return [name for name, uri in uris.items() if p11admin.names_token(uri, desc)]

    result = p11admin.init_token(
        module, label, so_pin, user_pin, slot_id=slot_id, reinit=reinit, referenced_by=referenced_by
    )
    stored = False
    if config.device.cryptoki.pin is None:
        set_value(config_dir, "device.cryptoki.pin", user_pin)
        stored = True
    return InitOutcome(result, stored)


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
    token_uri = token_part(Pkcs11Uri.parse(key_uri)) if key_uri else None
    request = KeyRequest(
        spec=spec, label=label, token_uri=token_uri, force_new=True, write_config=False
    )
    admin = open_admin(config, pins)
    try:
        return create_key(config_dir, admin, request).created
    finally:
        admin.close()


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
        holders = {token_part(Pkcs11Uri.parse(k.uri)) for k in keys}
        if len(holders) == 1:
            wanted = replace(holders.pop(), object=wanted.object, id=wanted.id)
    return admin.delete_key(wanted, wanted.object, wanted.id)


# -- change-pin ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PinOutcome:
    token: str
    config_updated: bool
    note: str = ""


def change_user_pin(
    config_dir: Path, token_uri: Pkcs11Uri | None, pins: PinSource, *, reset: bool
) -> PinOutcome:
    """`agent hsm change-pin`: with the current PIN, or (``reset``) with the SO PIN."""
    require_module_mode(load_config(config_dir), "change-pin")
    so_pin = pins.so_pin() if reset else None
    old_pin = None if so_pin is not None else pins.user_pin()
    return change_pin(config_dir, token_uri, pins.new_pin(), old_pin=old_pin, so_pin=so_pin)


def change_pin(
    config_dir: Path,
    token_uri: Pkcs11Uri | None,
    new_pin: str,
    *,
    old_pin: str | None = None,
    so_pin: str | None = None,
) -> PinOutcome:
    """Change the user PIN (with the old one) or reset it (with the SO PIN); sync the config."""
    from edgeagent.pkcs11.module import load_module
    from edgeagent.pkcs11.modules import module_for

    config = load_config(config_dir)
    require_module_mode(config, "change-pin")
    if (old_pin is None) == (so_pin is None):
        raise UsageError("change-pin needs either the current PIN or the SO PIN")
    module = load_module(module_for(token_uri, config.device.cryptoki.module_path))
    found = p11admin.choose_token(module, token_uri)
    if so_pin is not None:
        p11admin.reset_pin(module, found, so_pin, new_pin)
    else:
        assert old_pin is not None
        p11admin.change_pin(module, found, old_pin, new_pin)
    return _sync_pin(config_dir, found.description.label, old_pin, new_pin)


def _sync_pin(config_dir: Path, token: str, old_pin: str | None, new_pin: str) -> PinOutcome:
    try:
        stored: str | None = get(config_dir, "device.cryptoki.pin", reveal=True, environ={})
    except AgentError:
        stored = None
    if stored is not None and old_pin is not None and stored != old_pin:
        return PinOutcome(
            token,
            False,
            "device.cryptoki.pin holds another PIN (another token's?); it was left as it is",
        )
    set_value(config_dir, "device.cryptoki.pin", new_pin)
    from edgeagent.config import env_override

    variable = env_override("device.cryptoki.pin")
    note = f"{variable} is set and overrides device.cryptoki.pin: update it" if variable else ""
    return PinOutcome(token, True, note)

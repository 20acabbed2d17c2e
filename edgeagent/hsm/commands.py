"""What each `agent hsm` command does; the CLI only parses and prints.

    outcome = create_key(config_dir, admin, KeyRequest(spec="ec-p256"))
    outcome.created.entry.uri      # printed on stdout
    outcome.wrote                  # device.key_uri updated?

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

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from edgeagent.config import AgentConfig, get, load_config, set_value
from edgeagent.errors import (
    AgentError,
    CertificateUnreadable,
    ConfigError,
    KeyInUse,
    KeyNotFound,
    MissingConfigValue,
    TokenError,
    TokenNotFound,
    TokenNotInitialized,
)
from edgeagent.hsm.backend import TokenAdmin
from edgeagent.pkcs11 import admin as p11admin
from edgeagent.pkcs11.tokens import TokenDescription
from edgeagent.pkcs11.uri import Pkcs11Uri

SOCKET_MODE_FIX = (
    "run it where the token is configured, as the signing service's user: "
    "agent --config-dir /etc/agent-p11-server hsm {command} ..., "
    "then restart agent-p11-server"
)


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
        return [name for name, uri in uris.items() if p11admin.names_token(uri, desc.identity)]

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


@dataclass(frozen=True)
class CreateOutcome:
    created: p11admin.CreatedKey
    config_key: str
    wrote: bool
    """True when config_key now holds the key's URI (written now)."""
    suggestion: str | None
    """The `agent config set` command to run, when config_key was left alone."""
    note: str = ""


AutoInit = Callable[[], InitOutcome]
"""Initialises a token when there is none (module mode); asks for the SO PIN."""


def create_key(
    config_dir: Path,
    admin: TokenAdmin,
    request: KeyRequest,
    auto_init: AutoInit | None = None,
) -> CreateOutcome:
    """Make (or reuse) the key; write its URI to the configuration (module docstring)."""
    config = load_config(config_dir)
    names_token = request.token_uri is not None and request.token_uri.names_token
    try:
        created = admin.create_key(
            request.token_uri, request.spec, request.label, request.key_id, request.force_new
        )
    except (TokenNotInitialized, TokenNotFound):
        # "no token yet": initialise one, unless the user named one we did not find.
        if auto_init is None or names_token or not _no_token_at_all(admin):
            raise
        auto_init()
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
        raise CertificateUnreadable(
            f"cannot write the public key to {path}: {error.strerror}",
            "choose a writable --public-key path",
        ) from error


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
        raise KeyNotFound(
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


# -- change-pin ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PinOutcome:
    token: str
    config_updated: bool
    note: str = ""


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
        raise MissingConfigValue("change-pin needs either the current PIN or the SO PIN")
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

"""`agent hsm init|change-pin`: a token's set-up and its user PIN, in module mode only.

The configuration rules are in :mod:`edgeagent.hsm.policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeagent.config import env_override, get, load_config, set_value
from edgeagent.errors import AgentError, UsageError
from edgeagent.hsm.policy import PinSource, configured_key_uris, require_module_mode
from edgeagent.pkcs11 import admin as p11admin
from edgeagent.pkcs11.module import load_module
from edgeagent.pkcs11.modules import module_for
from edgeagent.pkcs11.tokens import TokenDescription
from edgeagent.pkcs11.uri import Pkcs11Uri

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
    variable = env_override("device.cryptoki.pin")
    note = f"{variable} is set and overrides device.cryptoki.pin: update it" if variable else ""
    return PinOutcome(token, True, note)

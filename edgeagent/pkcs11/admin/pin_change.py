"""Changing a token's user PIN (`agent hsm change-pin`), or setting it as the SO.

    change_pin(module, found, old_pin="123456", new_pin="654321")   # C_SetPIN
    reset_pin(module, found, so_pin="12345678", new_pin="123456")   # C_InitPIN

Each PIN is tried once: a refused PIN is never retried (tokens count failures).
"""

from __future__ import annotations

from edgeagent.pkcs11.admin.session import admin_session
from edgeagent.pkcs11.module import Module, pkcs11_errors
from edgeagent.pkcs11.tokens import FoundToken


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

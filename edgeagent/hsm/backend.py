"""TokenAdmin: the token operations both modes offer, and how to get one.

    with open_token_admin(config, pin="123456") as admin:
        admin.list_keys(Pkcs11Uri.parse("pkcs11:token=my-token"))

In module mode the module is loaded here (``TokenAdministration``); in
socket mode the signing service does the work (``SocketAdmin``), so the
agent's user needs neither the module nor the PIN, only the service's
permission: reading for every allowed peer, creating and deleting keys for
the service's own user or root.

``open_token_admin`` imports each mode's implementation when it is chosen:
socket mode never loads python-pkcs11 (tests/unit/test_layers.py checks it).
"""

from __future__ import annotations

from typing import Protocol, Self

from edgeagent.config import AgentConfig
from edgeagent.pkcs11.keyspecs import KeySpec
from edgeagent.pkcs11.listings import CreatedKey, KeyListing, SlotListing
from edgeagent.pkcs11.uri import Pkcs11Uri


class TokenAdmin(Protocol):
    """Implementations subclass this to be context managers (leaving ``with`` closes them)."""

    @property
    def location(self) -> str:
        """Where the work is done, for humans: the module, or the service's socket."""
        ...

    def list_tokens(self) -> list[SlotListing]: ...

    def list_keys(self, uri: Pkcs11Uri | None) -> list[KeyListing]: ...

    def create_key(
        self,
        uri: Pkcs11Uri | None,
        spec: KeySpec,
        label: str,
        key_id: bytes | None,
        force_new: bool,
    ) -> CreatedKey: ...

    def delete_key(
        self, uri: Pkcs11Uri | None, label: str | None, key_id: bytes | None
    ) -> list[str]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_token_admin(config: AgentConfig, pin: str | None) -> TokenAdmin:
    """The service's socket in socket mode, else the configured module loaded here."""
    cryptoki = config.device.cryptoki
    if cryptoki.mode == "socket":
        from edgeagent.hsm.socket_admin import SocketAdmin

        return SocketAdmin(cryptoki.socket_path)
    from edgeagent.pkcs11.admin import TokenAdministration
    from edgeagent.pkcs11.module import load_module
    from edgeagent.pkcs11.modules import module_for

    return TokenAdministration(load_module(module_for(None, cryptoki.module_path)), pin)

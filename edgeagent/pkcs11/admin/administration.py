"""TokenAdministration: the token operations with the module loaded in this process.

    with TokenAdministration(load_module(path), pin="123456") as admin:
        admin.list_keys(Pkcs11Uri.parse("pkcs11:token=my-token"))

The same operations as the signing service offers over its socket
(``edgeagent.protocol.admin``), so the CLI need not care which it has
(``edgeagent.hsm.backend.TokenAdmin``).
"""

from __future__ import annotations

from typing import Self

from edgeagent.pkcs11.admin.deletion import delete_key
from edgeagent.pkcs11.admin.keygen import create_key
from edgeagent.pkcs11.admin.listing import list_keys, list_keys_without_login, list_slots
from edgeagent.pkcs11.admin.session import choose_token
from edgeagent.pkcs11.keyspecs import KeySpec
from edgeagent.pkcs11.listings import CreatedKey, KeyListing, SlotListing
from edgeagent.pkcs11.module import Module
from edgeagent.pkcs11.tokens import find_tokens
from edgeagent.pkcs11.uri import Pkcs11Uri


class TokenAdministration:
    """Token administration with the module loaded in this process (module mode)."""

    def __init__(self, module: Module, pin: str | None) -> None:
        self.module = module
        self._pin = pin

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        """Nothing to release: each operation opens and closes its own session."""

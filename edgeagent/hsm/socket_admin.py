"""TokenAdmin through the signing service (docs/signing-protocol.md section 3.5).

A fresh connection per command, and mutating requests are never re-sent
after a broken connection: creating a key twice is not harmless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeagent.errors import SignerProtocolError
from edgeagent.hsm.backend import TokenAdmin
from edgeagent.pkcs11.keyspecs import KeySpec
from edgeagent.pkcs11.listings import CreatedKey, KeyListing, SlotListing
from edgeagent.pkcs11.uri import Pkcs11Uri, format_uri
from edgeagent.protocol import admin as wire
from edgeagent.signing.service_connection import ServiceConnection


def _uri(uri: Pkcs11Uri | None) -> str | None:
    return None if uri is None else format_uri(uri)


def _list(reply: dict[str, Any], field: str) -> list[Any]:
    items = reply.get(field)
    if not isinstance(items, list):
        raise SignerProtocolError(f"the signing service's answer has no list {field!r}")
    return items


class SocketAdmin(TokenAdmin):
    def __init__(self, socket_path: Path) -> None:
        self._conn = ServiceConnection(socket_path)

    @property
    def location(self) -> str:
        return f"the signing service at {self._conn.path}"

    def list_tokens(self) -> list[SlotListing]:
        reply = self._conn.request({"op": "list_tokens"})
        return [wire.slot_from_wire(item) for item in _list(reply, "tokens")]

    def list_keys(self, uri: Pkcs11Uri | None) -> list[KeyListing]:
        reply = self._conn.request({"op": "list_keys", "uri": _uri(uri)})
        return [wire.key_from_wire(item) for item in _list(reply, "keys")]

    def create_key(
        self,
        uri: Pkcs11Uri | None,
        spec: KeySpec,
        label: str,
        key_id: bytes | None,
        force_new: bool,
    ) -> CreatedKey:
        request = {
            "op": "create_key",
            "uri": _uri(uri),
            "key_type": spec,
            "label": label,
            "id": None if key_id is None else key_id.hex(),
            "force_new": force_new,
        }
        reply = self._conn.request(request, retry=False)
        return CreatedKey(wire.key_from_wire(reply.get("key")), reused=bool(reply.get("reused")))

    def delete_key(
        self, uri: Pkcs11Uri | None, label: str | None, key_id: bytes | None
    ) -> list[str]:
        request = {
            "op": "delete_key",
            "uri": _uri(uri),
            "label": label,
            "id": None if key_id is None else key_id.hex(),
        }
        reply = self._conn.request(request, retry=False)
        return [str(item) for item in _list(reply, "deleted")]

    def close(self) -> None:
        self._conn.close()

"""Token administration requests on the signing socket (docs/signing-protocol.md 3.5).

Read ops (``list_tokens``, ``list_keys``) for every allowed peer; mutating
ops (``create_key``, ``delete_key``) only for the service's own uid or root,
who could edit the service's configuration anyway. The service logs in with
its own PIN, never a client's, and a PIN it had refused is not tried again.
After a key is deleted the service drops the key handles it kept, so no
request signs with a handle that is gone.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from edgeagent.errors import AdminNotAllowed, KeyInUse
from edgeagent.p11server.keys import TokenKeys
from edgeagent.p11server.peers import Peer
from edgeagent.pkcs11.admin import TokenAdministration
from edgeagent.pkcs11.module import load_module
from edgeagent.pkcs11.uri import Pkcs11Uri, names_key
from edgeagent.protocol import admin as wire
from edgeagent.protocol.messages import parse_uri_field


def may_administer(peer: Peer) -> bool:
    return peer.uid in (os.getuid(), 0)


def _uri(text: str | None) -> Pkcs11Uri | None:
    return Pkcs11Uri.parse(text) if text else None


def answer_admin(op: str, request: dict[str, Any], peer: Peer, keys: TokenKeys) -> dict[str, Any]:
    """The response to one admin request (``op`` in ``wire.ADMIN_OPS``)."""
    if op in wire.MUTATING_OPS and not may_administer(peer):
        raise AdminNotAllowed(
            f"the signing service creates and deletes keys only for its own user "
            f"(uid {os.getuid()}) or root, not uid {peer.uid}",
            "run the command as the service's user (or root)",
        )
    # Malformed requests are answered before the token is touched.
    create = wire.parse_create_key(request) if op == "create_key" else None
    delete = wire.parse_delete_key(request) if op == "delete_key" else None
    listed_uri = keys.confine(parse_uri_field(request)) if op == "list_keys" else None
    with (
        TokenAdministration(load_module(keys.module_path), keys.admin_pin()) as tokens,
        keys.remember_pin_failure(),
    ):
        if op == "list_tokens":
            return {"ok": True, "tokens": [wire.slot_to_wire(s) for s in tokens.list_tokens()]}
        if op == "list_keys":
            listed = tokens.list_keys(listed_uri)
            return {"ok": True, "keys": [wire.key_to_wire(k) for k in listed]}
        if create is not None:
            created = tokens.create_key(
                keys.confine(create.uri),
                create.key_type,
                create.label,
                create.key_id,
                create.force_new,
            )
            return {"ok": True, "reused": created.reused, "key": wire.key_to_wire(created.entry)}
        assert delete is not None
        _refuse_default_key(keys, tokens, delete)
        deleted = tokens.delete_key(keys.confine(delete.uri), delete.label, delete.key_id)
        keys.forget_signers()
        return {"ok": True, "deleted": deleted}


def _refuse_default_key(
    keys: TokenKeys, tokens: TokenAdministration, delete: wire.DeleteKeyRequest
) -> None:
    """The key the service serves by default is not deleted from under its clients."""
    default = _uri(keys.default_uri)
    if default is None or not default.names_key:
        return
    base = _uri(delete.uri) or Pkcs11Uri()
    wanted = replace(
        base.token_part(),
        object=delete.label if delete.label is not None else base.object,
        id=delete.key_id if delete.key_id is not None else base.id,
    )
    for key in tokens.list_keys(wanted):
        if names_key(default, Pkcs11Uri.parse(key.uri)):
            raise KeyInUse(
                f"the signing service serves {key.uri} as its default key "
                "(device.cryptoki.uri / device.key_uri); not deleted",
                "change the service's default key and restart it first",
            )

"""Choosing the private key a key URI means (thin-edge's rules, seed 001).

    selected = select_key(module, Pkcs11Uri.parse("pkcs11:token=my-token;object=my-key"), pin)
    selected.uri            # the exact key: token + object + id + type=private
    selected.key            # its handle, used for every signature from now on

- A URI naming object / id / type: the private keys matching it.
- No URI, or one naming only a token: every private key on the token.
- Several match: the first in (CKA_ID, label) order is used, so every
  process picks the same one (``objects.py``: C_FindObjects order differs
  between processes), and a WARNING on logger ``edgeagent.pkcs11`` lists every
  candidate's URI.
- A URI that matches several tokens (no token attributes, or a label two
  tokens share): their public objects are searched without a login, and the
  first token in slot order that shows a match is the only one logged in to
  (warning if another token has one too). No token shows one: KeyNotFound,
  and no PIN was tried anywhere.

The handle chosen here is what signs; nothing searches the token again
before a signature (thin-edge #3601: a Nitrokey signed with another key
because the search ran again per signature).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pkcs11 import ObjectClass

from edgeagent.errors import KeyNotFound
from edgeagent.pkcs11.module import Module, pkcs11_errors
from edgeagent.pkcs11.objects import find_keys, key_uri, search_template
from edgeagent.pkcs11.tokens import (
    FoundToken,
    TokenSession,
    find_tokens,
    open_token_session,
)
from edgeagent.pkcs11.uri import Pkcs11Uri

log = logging.getLogger("edgeagent.pkcs11")

_FIX = "set device.key_uri to the URI of the key you mean (one of the above)"


@dataclass(eq=False)
class SelectedKey:
    """A private key chosen on a token, with the shared session it lives in."""

    session: TokenSession
    key: Any
    """python-pkcs11 PrivateKey: the object handle every signature uses."""
    uri: Pkcs11Uri
    """Token attributes + object + id + type=private of this very key."""


def select_key(module: Module, uri: Pkcs11Uri | None, pin: str | None) -> SelectedKey:
    """Find the private key ``uri`` names (see the module docstring).

    The PIN goes to one token only: the one token ``uri`` matches, or, when it
    matches several, the first that shows the key without a login. Tokens
    count failed logins towards a lock-out: a PIN is never tried on a token
    the configuration did not point at.

    Raises TokenNotFound, PinIncorrect, PinLocked, KeyNotFound.
    """
    uri = uri or Pkcs11Uri()
    if uri.type not in (None, "private"):
        raise KeyNotFound(
            f"{uri} names a {uri.type} object, not a private key",
            "use type=private in device.key_uri, or leave type out",
        )
    tokens = find_tokens(module, uri)
    found = tokens[0] if len(tokens) == 1 else _the_token_holding(module, tokens, uri)
    session = open_token_session(module, found, pin)
    listings: list[str] = []
    try:
        selected = _select_on_token(session, uri, listings)
    except BaseException:
        session.release()
        raise
    if selected is not None:
        return selected
    session.release()
    found_keys = "\n".join(listings) if listings else "    (no private keys visible)"
    raise KeyNotFound(
        f"no private key matches {uri} on {found.description.summary()}; "
        f"private keys that exist there:\n{found_keys}",
        _FIX,
    )


def _the_token_holding(module: Module, tokens: list[FoundToken], uri: Pkcs11Uri) -> FoundToken:
    """Of several tokens ``uri`` matches, the first (slot order) that shows a matching
    key without a login: its public key (or a private key it does not protect)."""
    holders = [found for found in tokens if shows_match(module, found, uri)]
    if not holders:
        listed = "\n".join(f"    {t.description.summary()}" for t in tokens)
        raise KeyNotFound(
            f"{uri} matches {len(tokens)} tokens and none of them shows a key for it "
            f"without a login; the PIN was tried on none of them. Tokens:\n{listed}",
            "name the token in device.key_uri (token=<label>, and serial=<serial> when "
            "labels repeat; `agent hsm list-tokens` prints each token's URI)",
        )
    if len(holders) > 1:
        listed = "\n".join(f"    {found.description.summary()}" for found in holders[1:])
        log.warning(
            "keys matching %s exist on %d tokens; using the one on %s, the first token in "
            "slot order. Other tokens with a match:\n%s\nIf the wrong one was chosen, set "
            "device.key_uri to a URI that names the token.",
            uri,
            len(holders),
            holders[0].description.summary(),
            listed,
        )
    return holders[0]


def shows_match(module: Module, found: FoundToken, uri: Pkcs11Uri) -> bool:
    """Does ``found`` show a key matching ``uri`` in a session without a login?

    A public session sees the public key objects stored next to private keys
    (and the private keys of a token that needs no login). Closing it logs
    nobody out.
    """
    with module.lock, pkcs11_errors("searching for keys", found.description.label):
        shared = module.sessions.get(found.description.slot_id)
        session = shared.session if shared is not None else found.token.open()
        try:
            return any(
                next(iter(session.get_objects(search_template(cls, uri.object, uri.id))), None)
                is not None
                for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY)
            )
        finally:
            if shared is None:
                session.close()


def _select_on_token(
    session: TokenSession, uri: Pkcs11Uri, listings: list[str]
) -> SelectedKey | None:
    desc = session.description
    with session.lock, pkcs11_errors("searching for private keys", desc.label):
        keys = find_keys(session.session, ObjectClass.PRIVATE_KEY, uri.object, uri.id)
        if not keys:
            everything = session.session.get_objects(search_template(ObjectClass.PRIVATE_KEY))
            listings.extend(f"    {key_uri(desc, k)}" for k in everything)
            return None
        candidates = [key_uri(desc, k) for k in keys]
    if len(keys) > 1:
        listed = "\n".join(f"    {c}" for c in candidates)
        log.warning(
            "%d private keys match %s on token %r; using the first one, %s. "
            "Candidates:\n%s\nIf the wrong one was chosen, set device.key_uri to one of them.",
            len(keys),
            uri,
            desc.label,
            candidates[0],
            listed,
        )
    return SelectedKey(session=session, key=keys[0], uri=candidates[0])

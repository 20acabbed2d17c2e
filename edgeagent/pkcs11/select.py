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
- No token attributes: the matching tokens are searched in slot order and
  the first one with a match wins (warning if another token has one too).

The handle chosen here is what signs; nothing searches the token again
before a signature (thin-edge #3601: a Nitrokey signed with another key
because the search ran again per signature).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pkcs11 import ObjectClass

from edgeagent.errors import KeyNotFound, PinIncorrect, PinLocked
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

    Raises TokenNotFound, PinIncorrect, PinLocked, KeyNotFound.
    """
    uri = uri or Pkcs11Uri()
    if uri.type not in (None, "private"):
        raise KeyNotFound(
            f"{uri} names a {uri.type} object, not a private key",
            "use type=private in device.key_uri, or leave type out",
        )
    tokens = find_tokens(module, uri)
    listings: list[str] = []
    pin_error: PinIncorrect | PinLocked | None = None
    for index, found in enumerate(tokens):
        try:
            session = open_token_session(module, found, pin)
        except (PinIncorrect, PinLocked) as exc:
            if len(tokens) == 1:
                raise
            # The URI does not say which token: one with another PIN is
            # skipped rather than ending the search. The PIN is not retried.
            log.warning(
                "skipping token %r while searching for a key: %s",
                found.description.label,
                exc.cause,
            )
            pin_error = pin_error or exc
            continue
        try:
            selected = _select_on_token(session, uri, listings)
        except BaseException:
            session.release()
            raise
        if selected is None:
            session.release()
            continue
        if len(tokens) > 1:
            _warn_other_tokens(module, tokens[index + 1 :], uri, selected)
        return selected
    if pin_error is not None and not listings:
        raise pin_error
    found_keys = "\n".join(listings) if listings else "    (no private keys visible)"
    raise KeyNotFound(
        f"no private key matches {uri}; private keys that exist:\n{found_keys}",
        _FIX,
    )


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


def _warn_other_tokens(
    module: Module, rest: list[FoundToken], uri: Pkcs11Uri, selected: SelectedKey
) -> None:
    """Warn when a later token also holds a matching key, without logging in to it.

    Logging in to every token just to warn would spend a PIN attempt on
    tokens the user never meant; a public session still sees the public
    key objects stored next to private keys.
    """
    others = []
    for found in rest:
        with module.lock, pkcs11_errors("searching for keys", found.description.label):
            shared = module.sessions.get(found.description.slot_id)
            session = shared.session if shared is not None else found.token.open()
            try:
                hit = any(
                    next(iter(session.get_objects(search_template(cls, uri.object, uri.id))), None)
                    is not None
                    for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY)
                )
            finally:
                if shared is None:
                    session.close()  # a public session: closing it logs nobody out
        if hit:
            others.append(found.description)
    if others:
        listed = "\n".join(f"    {d.summary()}" for d in others)
        log.warning(
            "keys matching %s exist on %d tokens; using %s from the first token in slot order. "
            "Other tokens with a match:\n%s\nIf the wrong one was chosen, set device.key_uri "
            "to a URI that names the token.",
            uri,
            len(others) + 1,
            selected.uri,
            listed,
        )

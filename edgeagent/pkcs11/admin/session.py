"""Which token an administrative command means, and a read/write session on it.

    found = choose_token(module, Pkcs11Uri.parse("pkcs11:token=my-token"))
    with admin_session(module, found, pin="123456") as session:
        ...

Every operation runs under the module's lock, in its own read/write session
that is closed before the lock is released: token administration is rare, and
the shared signing session (``tokens.py``) is read-only. Login state is per
token and application, so a session opened while the signing session is
logged in simply shares that login (and so never logs it out on close).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pkcs11.exceptions as p11x
from pkcs11 import Attribute, ObjectClass
from pkcs11.attributes import AttributeMapper

from edgeagent.errors import MissingConfigValue, PinIncorrect, TokenAmbiguous
from edgeagent.pkcs11.module import Module, pkcs11_errors
from edgeagent.pkcs11.tokens import FoundToken, TokenDescription, find_tokens, with_attempts_left
from edgeagent.pkcs11.uri import Pkcs11Uri

log = logging.getLogger("edgeagent.pkcs11")


def choose_token(module: Module, uri: Pkcs11Uri | None) -> FoundToken:
    """The one token ``uri`` means: the only one, or the one it names.

    TokenAmbiguous (listing every candidate's URI) when several could be
    meant; TokenNotFound / TokenNotInitialized when there is none.
    """
    tokens = find_tokens(module, uri or Pkcs11Uri())
    if len(tokens) > 1:
        listing = "\n".join("    " + t.description.summary() for t in tokens)
        raise TokenAmbiguous(
            f"{len(tokens)} tokens could be meant:\n{listing}",
            "name one: pass --token-uri with one of the URIs above",
        )
    return tokens[0]


class KeyTemplates(AttributeMapper):
    """python-pkcs11's templates, or (``only_given``) exactly the attributes we pass.

    python-pkcs11 fills every usage attribute (CKA_DECRYPT false, ...) into
    a key template; some modules refuse that (``keygen.py``, template 3).
    """

    def __init__(self) -> None:
        super().__init__()
        self.only_given = False

    def public_key_template(self, **kwargs: Any) -> dict[Attribute, Any]:
        if self.only_given:
            return {Attribute.CLASS: ObjectClass.PUBLIC_KEY}
        return dict(super().public_key_template(**kwargs))

    def private_key_template(self, **kwargs: Any) -> dict[Attribute, Any]:
        if self.only_given:
            return {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
        return dict(super().private_key_template(**kwargs))


@contextmanager
def admin_session(
    module: Module,
    found: FoundToken,
    pin: str | None,
    *,
    so_pin: str | None = None,
    templates: KeyTemplates | None = None,
) -> Iterator[Any]:
    """A read/write session on ``found``, logged in as the user (or the SO), under the lock.

    The PIN is tried once; a refused PIN is never retried (tokens count
    failures). A token that does not require a login gets no login.
    """
    desc = found.description
    with module.lock:
        mapper = templates or KeyTemplates()
        if so_pin is not None:
            session = _open(found, desc, mapper, so_pin=so_pin)
        elif desc.login_required:
            if not pin:
                raise MissingConfigValue(
                    f"token {desc.label!r} requires a login and no PIN was given",
                    "set device.cryptoki.pin, or pass --pin-file",
                )
            session = _open(found, desc, mapper, user_pin=pin)
        else:
            with pkcs11_errors("opening a session", desc.label):
                session = found.token.open(rw=True, attribute_mapper=mapper)
        try:
            yield session
        finally:
            try:
                session.close()
            except p11x.PKCS11Error as exc:
                log.debug("closing the admin session on %s: %r", desc.label, exc)


def _open(found: FoundToken, desc: TokenDescription, mapper: KeyTemplates, **login: str) -> Any:
    try:
        with pkcs11_errors("logging in", desc.label):
            try:
                return found.token.open(rw=True, attribute_mapper=mapper, **login)
            except p11x.UserAlreadyLoggedIn:
                # Logged in already by this process (the signing session):
                # this session shares that login and must not log it out.
                return found.token.open(rw=True, attribute_mapper=mapper)
    except PinIncorrect as error:
        if "so_pin" in login:
            # Say whose PIN: the fix is another file than the user PIN's.
            error = PinIncorrect(
                error.cause.replace("PIN incorrect", "SO PIN incorrect", 1),
                "check the SO PIN (--so-pin-file, EDGEAGENT_SO_PIN); " + error.fix,
            )
            raise error from None
        raise with_attempts_left(found, error) from error.__cause__

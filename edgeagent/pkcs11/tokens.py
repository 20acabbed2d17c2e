"""Finding tokens from a URI, logging in, and the one shared session per token.

    tokens = find_tokens(module, Pkcs11Uri.parse("pkcs11:token=my-token"))
    session = open_token_session(module, tokens[0], pin="123456")
    with session.lock:
        ... session.session.get_objects(...) ...
    session.release()

Many modules refuse a second concurrent login, and PKCS#11 login state is
per token and application anyway, so every user of a token in this process
shares one session (reference-counted). Callers hold ``session.lock`` (the
module's lock, see ``module.py``) around every call on it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import pkcs11
import pkcs11.exceptions as p11x
from pkcs11 import TokenFlag

from edgeagent.errors import (
    MissingConfigValue,
    PinIncorrect,
    PinLocked,
    TokenError,
    TokenNotFound,
    TokenNotInitialized,
)
from edgeagent.pkcs11.module import Module, pkcs11_errors
from edgeagent.pkcs11.stores import store_access_problem
from edgeagent.pkcs11.uri import Pkcs11Uri, names_token

log = logging.getLogger("edgeagent.pkcs11")


@dataclass(frozen=True)
class TokenDescription:
    """What C_GetSlotInfo and C_GetTokenInfo say about one token."""

    slot_id: int
    slot_description: str
    slot_manufacturer: str
    label: str
    manufacturer: str
    model: str
    serial: str
    login_required: bool
    protected_auth_path: bool

    @property
    def uri(self) -> Pkcs11Uri:
        """The token's URI, with the attributes p11tool prints for it."""
        return Pkcs11Uri(
            manufacturer=self.manufacturer,
            model=self.model,
            serial=self.serial,
            token=self.label,
        )

    @property
    def identity(self) -> Pkcs11Uri:
        """Every slot and token attribute, to match a URI against (``uri.names_token``)."""
        return replace(
            self.uri,
            slot_id=self.slot_id,
            slot_description=self.slot_description,
            slot_manufacturer=self.slot_manufacturer,
        )

    def summary(self) -> str:
        return f"token {self.label!r} (serial {self.serial}, slot {self.slot_id}): {self.uri}"


@dataclass(frozen=True)
class FoundToken:
    """A token that matched, with the python-pkcs11 object to open it."""

    description: TokenDescription
    token: Any


def describe(slot: Any, token: Any) -> TokenDescription:
    """What C_GetSlotInfo and C_GetTokenInfo say, from python-pkcs11's slot and token."""
    return TokenDescription(
        slot_id=int(slot.slot_id),
        slot_description=slot.slot_description,
        slot_manufacturer=slot.manufacturer_id,
        label=token.label,
        manufacturer=token.manufacturer_id,
        model=token.model,
        serial=token.serial.decode("utf-8", "replace"),
        login_required=bool(token.flags & TokenFlag.LOGIN_REQUIRED),
        protected_auth_path=bool(token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH),
    )


def list_tokens(module: Module) -> list[FoundToken]:
    """Initialised tokens in slot order (C_GetSlotList's order)."""
    return _scan_slots(module)[0]


def slots_with_tokens(module: Module) -> list[tuple[Any, Any]]:
    """python-pkcs11's (slot, token) for every slot holding a token, blank ones included."""
    present = []
    with module.lock, pkcs11_errors(f"listing the tokens of {module.path}"):
        for slot in module.lib.get_slots(token_present=True):
            try:
                present.append((slot, slot.get_token()))
            except (p11x.TokenNotPresent, p11x.TokenNotRecognised, p11x.DeviceRemoved):
                continue  # pulled out between the two calls: not there
    return present


def _scan_slots(module: Module) -> tuple[list[FoundToken], list[int]]:
    """Initialised tokens, and the slots holding an uninitialised one."""
    found = []
    blank: list[int] = []
    for slot, token in slots_with_tokens(module):
        # SoftHSM2 always offers an empty, uninitialised token for
        # --init-token; it can hold no key, so it is not listed.
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            blank.append(int(slot.slot_id))
            continue
        found.append(FoundToken(describe(slot, token), token))
    return found, blank


def _library_matches(module: Module, uri: Pkcs11Uri) -> bool:
    lib = module.lib
    if uri.library_manufacturer not in (None, lib.manufacturer_id):
        return False
    if uri.library_description not in (None, lib.library_description):
        return False
    if uri.library_version is not None:
        major, _, minor = uri.library_version.partition(".")
        if (int(major), int(minor or 0)) != tuple(lib.library_version):
            return False
    return True


def find_tokens(module: Module, uri: Pkcs11Uri) -> list[FoundToken]:
    """Tokens matching ``uri``'s library, slot and token attributes, in slot order.

    When none match, the module is re-initialised once (if allowed, see
    :meth:`Module.rescan`) in case the token appeared after it was loaded;
    then TokenNotFound lists the tokens that do exist.
    """
    for attempt in range(2):
        tokens = list_tokens(module)
        matching = [t for t in tokens if names_token(uri, t.description.identity)]
        if matching and _library_matches(module, uri):
            return matching
        if attempt == 0 and not module.rescan():
            break
    raise _token_not_found(module, uri, tokens)


def _token_not_found(module: Module, uri: Pkcs11Uri, tokens: list[FoundToken]) -> TokenError:
    wanted = uri.token_part()
    if not tokens:
        denied = store_access_problem(module.path)
        if denied is not None:
            return denied
        blank = _scan_slots(module)[1]
        # SoftHSM2 always keeps one blank slot for the next --init-token; a
        # blank slot only explains "no token" when nothing else is there.
        if blank:
            return TokenNotInitialized(
                f"the token in slot {blank[0]} of {module.path} has never been initialised "
                f"(wanted {wanted})",
                "initialise it (SoftHSM2: softhsm2-util --init-token --free --label <label>; "
                "TPM: tpm2_ptool addtoken), then create or import the device key",
            )
        return TokenNotFound(
            f"no initialised token in PKCS#11 module {module.path} (wanted {wanted})",
            "create or plug in the token; for SoftHSM2 check SOFTHSM2_CONF and that "
            "this user may read its token directory",
        )
    listing = "\n".join("    " + t.description.summary() for t in tokens)
    if not _library_matches(module, uri):
        cause = f"{module.path} is not the library {uri} names ({module.description})"
    else:
        cause = f"no token matches {wanted}"
    return TokenNotFound(
        f"{cause}; tokens that exist:\n{listing}",
        "set device.key_uri to a URI naming one of these tokens",
    )


@dataclass(eq=False)
class TokenSession:
    """The shared, logged-in (when the token needs it) session on one token."""

    module: Module
    description: TokenDescription
    session: Any
    logged_in: bool
    users: int = 1
    closed: bool = field(default=False)

    @property
    def lock(self) -> threading.RLock:
        return self.module.lock

    def release(self) -> None:
        """Drop one user; the last one logs out and closes the session."""
        with self.module.lock:
            if self.closed:
                return
            self.users -= 1
            if self.users > 0:
                return
            self.closed = True
            self.module.sessions.pop(self.description.slot_id, None)
            try:
                # python-pkcs11 calls C_Logout first when it logged in.
                self.session.close()
            except p11x.PKCS11Error as exc:
                # The token may be gone already; nothing to undo then.
                log.debug("closing session on %s: %r", self.description.label, exc)


def open_token_session(module: Module, found: FoundToken, pin: str | None) -> TokenSession:
    """Share (or open) the session on ``found``, logging in only if the token requires it.

    An empty ``pin`` counts as no PIN (an empty environment variable is
    "unset"). A wrong PIN raises PinIncorrect at once: it is never retried,
    because tokens count failures and lock out.
    """
    desc = found.description
    with module.lock:
        shared: TokenSession | None = module.sessions.get(desc.slot_id)
        if shared is not None and not shared.closed:
            shared.users += 1
            return shared
        session, logged_in = _open_and_login(found, pin or None)
        shared = TokenSession(module, desc, session, logged_in)
        module.sessions[desc.slot_id] = shared
        return shared


def _open_and_login(found: FoundToken, pin: str | None) -> tuple[Any, bool]:
    desc = found.description
    # CryptoAuthLib, p11-kit trust and others clear CKF_LOGIN_REQUIRED and
    # fail C_Login: only log in when asked to (thin-edge PR #4301).
    if not desc.login_required:
        with pkcs11_errors("opening a session", desc.label):
            return found.token.open(), False
    if pin is None:
        if not desc.protected_auth_path:
            raise MissingConfigValue(
                f"token {desc.label!r} requires a login and no PIN is configured",
                "set device.cryptoki.pin",
            )
        user_pin: Any = pkcs11.PROTECTED_AUTH  # PIN pad on the reader
    else:
        user_pin = pin
    if found.token.flags & TokenFlag.USER_PIN_LOCKED:
        # Trying would tell us nothing and may count as one more failure.
        raise PinLocked(
            f"the user PIN of token {desc.label!r} is locked (CKF_USER_PIN_LOCKED); "
            "no login was attempted",
            "unlock or reset it with the security officer PIN (e.g. `pkcs11-tool --init-pin`)",
        )
    try:
        with pkcs11_errors("logging in", desc.label):
            try:
                return found.token.open(user_pin=user_pin), True
            except p11x.UserAlreadyLoggedIn:
                # Login state is per token and application: something else in
                # this process logged in already, and a plain session shares it.
                # Not ours to log out on close, hence logged_in=False.
                return found.token.open(), False
    except PinIncorrect as error:
        raise with_attempts_left(found, error) from error.__cause__


def with_attempts_left(found: FoundToken, error: PinIncorrect) -> PinIncorrect:
    """The same error, saying how close the token now is to locking the PIN."""
    try:
        flags = found.token.slot.get_token().flags
    except p11x.PKCS11Error:
        return error
    if flags & TokenFlag.USER_PIN_LOCKED:
        return PinIncorrect(
            error.cause + "; the token has now LOCKED the user PIN",
            "reset it with the security officer PIN, then fix device.cryptoki.pin",
        )
    if flags & TokenFlag.USER_PIN_FINAL_TRY:
        note = "; ONE attempt is left before the token locks the PIN"
    elif flags & TokenFlag.USER_PIN_COUNT_LOW:
        note = "; the token reports few attempts left before it locks the PIN"
    else:
        return error
    return PinIncorrect(error.cause + note, error.fix)

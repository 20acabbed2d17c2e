"""The keys the signing service signs with, opened once and kept.

Each distinct key URI a client asks for is resolved once to a key handle and
kept (thin-edge #3601: never search again before signing). A wrong or locked
PIN is remembered and answered from memory until restart: retrying it would
count against the token's lockout (a TPM's dictionary-attack protection).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from edgeagent.errors import (
    InvalidKeyUri,
    KeyNotFound,
    PinIncorrect,
    PinLocked,
    TokenNotFound,
    TokenOperationFailed,
)
from edgeagent.pkcs11.module import load_module
from edgeagent.pkcs11.select import shows_match
from edgeagent.pkcs11.tokens import list_tokens
from edgeagent.pkcs11.uri import Pkcs11Uri, format_uri, names_token
from edgeagent.signing.module_signer import ModuleSigner, open_module_signer

MAX_OPEN_KEYS = 32
# Client URI texts mapped to their open key (parsing and confining one costs
# ~50 µs a request). Bounded in count and length: a client must not make the
# service keep what it sends (a URI may carry any x-... attribute).
MAX_REMEMBERED_URIS = 64
MAX_REMEMBERED_URI_LENGTH = 512

# What identifies a token in a selected key's URI (slots are not in it).
_TOKEN_IDENTITY = ("manufacturer", "model", "serial", "token")


def _bare(value: str) -> str:
    # tpm2-pkcs11 pads its text fields with NULs; PKCS#11 with blanks.
    return value.rstrip("\0 ")


class TokenKeys:
    def __init__(
        self,
        module_path: Path,
        pin: str | None,
        default_uri: str | None,
        pin_from: str = "device.cryptoki.pin",
    ) -> None:
        self._module_path = module_path
        self._pin = pin
        self._pin_from = pin_from
        self._default_uri = default_uri
        self._signers: dict[str | None, ModuleSigner] = {}
        self._by_client_uri: dict[str, ModuleSigner] = {}
        self._pin_failure: PinIncorrect | PinLocked | None = None
        self._scope: Pkcs11Uri | None = None
        self._lock = threading.Lock()

    def signer(self, uri: str | None) -> ModuleSigner:
        """The signer for a client's ``uri`` (None: the service's default key)."""
        with self._lock:
            if not uri:
                return self._open(self._default_uri)
            signer = self._by_client_uri.get(uri)
            if signer is None:
                signer = self._open(format_uri(self._confine(uri)))
                if len(uri) <= MAX_REMEMBERED_URI_LENGTH:
                    if len(self._by_client_uri) >= MAX_REMEMBERED_URIS:
                        self._by_client_uri.clear()  # rare; the next requests re-parse
                    self._by_client_uri[uri] = signer
            return signer

    def confine(self, uri: str | None) -> Pkcs11Uri:
        """A client's URI, limited to the served token (for admin requests too)."""
        with self._lock:
            return self._confine(uri or "pkcs11:")

    def _confine(self, text: str) -> Pkcs11Uri:
        """Refuse what a client must not choose; pin the URI to the served token.

        Done before any login: a client must not make the service read files
        (pin-source), use a PIN of the client's (pin-value), load another
        module, or spend PIN attempts on tokens it does not serve.
        """
        uri = Pkcs11Uri.parse(text)
        if uri.pin_value or uri.pin_source or uri.module_path or uri.module_name:
            raise InvalidKeyUri(
                "the signing service takes no pin-value, pin-source, module-path or "
                "module-name from its clients",
                "remove the query part (after '?') from the key URI: the service uses "
                "its own PIN and module",
            )
        return self._pinned(uri, text)

    def _pinned(self, uri: Pkcs11Uri, text: str) -> Pkcs11Uri:
        """``uri`` with the served token's identity filled in; KeyNotFound if it names another."""
        scope = self._scope_uri()
        merged = {}
        for name in _TOKEN_IDENTITY:
            mine, theirs = getattr(scope, name), getattr(uri, name)
            if theirs is not None and mine is not None and _bare(theirs) != _bare(mine):
                raise KeyNotFound(
                    f"the signing service serves only keys on the token "
                    f"{format_uri(scope)}; {text} names another token",
                    "ask for a key on that token, or point the service's "
                    "device.cryptoki.uri at the other token",
                )
            merged[name] = theirs if theirs is not None else mine
        return replace(uri, **merged)

    def _scope_uri(self) -> Pkcs11Uri:
        """The served token, by every attribute that tells it from another (serial too).

        A label alone is not enough: two tokens may share one, and a client
        URI completed with the label only would reach the other one and spend
        the service's PIN there (its failed login counted towards that
        token's lock-out, the refusal remembered for every later request).
        """
        if self._scope is None:
            base = Pkcs11Uri.parse(self._default_uri) if self._default_uri else Pkcs11Uri()
            self._scope = self._served_token(base)
        return self._scope

    def _served_token(self, base: Pkcs11Uri) -> Pkcs11Uri:
        """The one token ``base`` (the service's URI) identifies, without a login."""
        module = load_module(self._module_path)
        tokens = [
            found for found in list_tokens(module) if names_token(base, found.description.identity)
        ]
        if len(tokens) > 1 and (base.object is not None or base.id is not None):
            # The service's own key picks its token: the one that shows it.
            tokens = [found for found in tokens if shows_match(module, found, base)]
        if len(tokens) != 1:
            raise TokenNotFound(
                f"the signing service's device.cryptoki.uri ({format_uri(base)}) fits "
                f"{len(tokens)} tokens, so it cannot tell which one it serves",
                "set device.cryptoki.uri (of the service) to a URI naming one token, e.g. "
                "pkcs11:token=<label>;serial=<serial> (agent hsm list-tokens prints it)",
            )
        return tokens[0].description.uri

    def _open(self, wanted: str | None) -> ModuleSigner:
        signer = self._signers.get(wanted)
        if signer is not None:
            return signer
        # A session already logged in needs no PIN: a refused PIN for
        # another URI must not stop serving the keys already open.
        if self._pin_failure is not None:
            raise self._pin_failure
        if len(self._signers) >= MAX_OPEN_KEYS:
            raise TokenOperationFailed(
                f"the signing service keeps at most {MAX_OPEN_KEYS} keys open",
                "restart the service; check for a client asking for many different keys",
            )
        # The key is searched on the served token only: the PIN goes nowhere else.
        target = self._pinned(Pkcs11Uri.parse(wanted or "pkcs11:"), wanted or "pkcs11:")
        try:
            signer = open_module_signer(
                self._module_path, format_uri(target), self._pin, pin_key=self._pin_from
            )
        except (PinIncorrect, PinLocked) as failure:
            self._pin_failure = failure
            raise
        if not self._in_scope(signer):
            location = signer.location
            signer.close()
            raise KeyNotFound(
                f"the signing service serves only keys on the token of "
                f"{self._default_uri}; {wanted} selects {location}",
                "ask for a key on that token, or point the service's "
                "device.cryptoki.uri at the other token",
            )
        self._signers[wanted] = signer
        return signer

    def _in_scope(self, signer: ModuleSigner) -> bool:
        """Is the selected key on the token the service was configured to serve?

        A client names its key with a URI; without this check any allowed
        client could use keys on any other token the module and PIN reach.
        The token is the boundary because one login unlocks all of its keys
        anyway (and `agent hsm` rotates keys within it); the object and id of
        the service's URI only choose its default key.
        """
        scope = self._scope_uri()
        selected = Pkcs11Uri.parse(signer.location)
        for name in _TOKEN_IDENTITY:
            wanted, got = getattr(scope, name), getattr(selected, name)
            if wanted is not None and (got is None or _bare(got) != _bare(wanted)):
                return False
        return True

    @property
    def module_path(self) -> Path:
        return self._module_path

    @property
    def default_uri(self) -> str | None:
        return self._default_uri

    def admin_pin(self) -> str | None:
        """The PIN for token administration; a PIN refused before is not tried again."""
        with self._lock:
            if self._pin_failure is not None:
                raise self._pin_failure
            return self._pin

    @contextmanager
    def remember_pin_failure(self) -> Iterator[None]:
        try:
            yield
        except (PinIncorrect, PinLocked) as failure:
            with self._lock:
                self._pin_failure = self._pin_failure or failure
            raise

    def forget_signers(self) -> None:
        """Drop every kept key handle (a key was deleted); they reopen on demand."""
        self.close()

    def close(self) -> None:
        with self._lock:
            for signer in self._signers.values():
                signer.close()
            self._signers.clear()
            self._by_client_uri.clear()

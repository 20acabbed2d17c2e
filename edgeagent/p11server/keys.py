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
from pathlib import Path

from edgeagent.errors import KeyNotFound, PinIncorrect, PinLocked
from edgeagent.pkcs11.uri import Pkcs11Uri
from edgeagent.signing.module_signer import ModuleSigner, open_module_signer


class TokenKeys:
    def __init__(self, module_path: Path, pin: str | None, default_uri: str | None) -> None:
        self._module_path = module_path
        self._pin = pin
        self._default_uri = default_uri
        self._signers: dict[str | None, ModuleSigner] = {}
        self._pin_failure: PinIncorrect | PinLocked | None = None
        self._lock = threading.Lock()

    def signer(self, uri: str | None) -> ModuleSigner:
        """The signer for ``uri`` (None: the service's default key)."""
        wanted = uri or self._default_uri
        with self._lock:
            signer = self._signers.get(wanted)
            if signer is None:
                # A session already logged in needs no PIN: a refused PIN for
                # another URI (another token) must not stop serving this one.
                if self._pin_failure is not None:
                    raise self._pin_failure
                try:
                    signer = open_module_signer(self._module_path, wanted, self._pin)
                except (PinIncorrect, PinLocked) as failure:
                    self._pin_failure = failure
                    raise
                if not self._in_scope(signer):
                    location = signer.location
                    signer.close()
                    raise KeyNotFound(
                        f"the signing service serves only keys on the token of "
                        f"{self._default_uri}; {uri} selects {location}",
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
        if not self._default_uri:
            return True
        scope = Pkcs11Uri.parse(self._default_uri)
        selected = Pkcs11Uri.parse(signer.location)
        # The fields a selected key's URI carries (slots are not in it).
        for name in ("manufacturer", "model", "serial", "token"):
            wanted, got = getattr(scope, name), getattr(selected, name)
            if isinstance(wanted, str) and isinstance(got, str):
                # tpm2-pkcs11 pads its text fields with NULs; PKCS#11 with blanks.
                wanted, got = wanted.rstrip("\0 "), got.rstrip("\0 ")
            if wanted is not None and got != wanted:
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

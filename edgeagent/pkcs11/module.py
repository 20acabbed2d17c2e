"""Loading a PKCS#11 module, and turning python-pkcs11's errors into ours.

    module = load_module(Path("/usr/lib/softhsm/libsofthsm2.so"))
    with module.lock, pkcs11_errors("listing slots"):
        slots = module.lib.get_slots(token_present=True)

How python-pkcs11 0.10 loads a library, and why this module is shaped so:

- ``pkcs11.lib(path)`` caches one ``lib`` per *path string* in a module-level
  dict and calls C_Initialize on first use; asking again for the same string
  returns the same object. Two different modules load side by side.
- The same file under another name (``/usr/lib/softhsm/libsofthsm2.so`` is a
  symlink) is a *second* ``lib``: dlopen hands back the same library, whose
  second C_Initialize fails with CKR_CRYPTOKI_ALREADY_INITIALIZED. So we key
  our cache by the resolved path and load that.
- C_Initialize is called with NULL arguments, which tells the module the
  application will not call it from several threads at once (SoftHSM2 then
  turns its own mutexes off). Every call into a module therefore goes under
  ``Module.lock``; that also covers python-pkcs11 sessions not being
  thread-safe while it releases the GIL inside C_Sign.
- SoftHSM2 reads its token directory at C_Initialize only: a token created
  by another process afterwards is invisible until C_Finalize + C_Initialize.
  :meth:`Module.rescan` does that, rarely (thin-edge #3766: re-initialising
  is slow and can wedge USB readers) and never under a live session.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pkcs11
import pkcs11.exceptions as p11x

from edgeagent.errors import (
    ModuleLoadError,
    PinIncorrect,
    PinLocked,
    TokenError,
    TokenOperationFailed,
)
from edgeagent.pkcs11.modules import refuse_untrusted_module
from edgeagent.pkcs11.stores import store_access_problem

RESCAN_INTERVAL = 30.0
"""Seconds between two re-initialisations of one module (thin-edge d22ee3cb0)."""

_FIX_PATH = "install the package that provides it, or correct device.cryptoki.module_path"


@dataclass(eq=False)
class Module:
    """One loaded PKCS#11 library, shared by everything in this process."""

    path: Path
    """The path as the user configured it (for messages)."""
    lib: Any
    """The ``pkcs11.lib``; call it only while holding ``lock``."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    sessions: dict[Any, Any] = field(default_factory=dict)
    """Open shared token sessions, keyed by slot (kept by ``tokens``)."""
    last_rescan: float = field(default_factory=time.monotonic)

    @property
    def description(self) -> str:
        return f"{self.lib.manufacturer_id} {self.lib.library_description} ({self.path})"

    def rescan(self, *, min_interval: float = RESCAN_INTERVAL) -> bool:
        """Re-initialise so tokens added since C_Initialize become visible.

        Returns False (and does nothing) when done less than ``min_interval``
        seconds ago, or when a session is open: C_Finalize would close it
        under whoever is using it.
        """
        with self.lock:
            now = time.monotonic()
            if self.sessions or now - self.last_rescan < min_interval:
                return False
            with pkcs11_errors(f"re-initialising {self.path}"):
                self.lib.reinitialize()
            self.last_rescan = now
            return True


_modules: dict[str, Module] = {}
_modules_lock = threading.Lock()


def load_module(path: Path) -> Module:
    """Load (once per process) the PKCS#11 library at ``path``.

    Raises ModuleLoadError saying whether the file is missing, unreadable, not
    a shared library, not a PKCS#11 library, or refused to initialise.
    """
    _check_file(path)
    refuse_untrusted_module(path)
    real = os.path.realpath(path)
    with _modules_lock:
        module = _modules.get(real)
        if module is None:
            module = Module(path=path, lib=_open_library(path, real))
            _modules[real] = module
        return module


def loaded_module(path: Path) -> Module | None:
    """The module already loaded from ``path`` in this process, if any."""
    with _modules_lock:
        return _modules.get(os.path.realpath(path))


def _check_file(path: Path) -> None:
    # dlopen only says "cannot open shared object file"; stat and access say
    # which of missing / not allowed it is, so nobody is sent to check a PIN.
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise ModuleLoadError(f"PKCS#11 module {path}: no such file", _FIX_PATH) from exc
    except PermissionError as exc:
        raise _permission_denied(path) from exc
    if not path.is_file():
        raise ModuleLoadError(
            f"PKCS#11 module {path} is not a file (mode {st.st_mode:o})", _FIX_PATH
        )
    if not os.access(path, os.R_OK):
        raise _permission_denied(path)


def _permission_denied(path: Path) -> ModuleLoadError:
    return ModuleLoadError(
        f"PKCS#11 module {path}: permission denied (user id {os.getuid()} may not read it)",
        "run the agent as a user that may read the module and its token "
        "(e.g. add it to the module's group, such as 'softhsm')",
    )


def _open_library(path: Path, real: str) -> Any:
    try:
        return pkcs11.lib(real)
    except p11x.PKCS11Error as exc:
        raise classify_load_failure(path, exc) from exc


def classify_load_failure(path: Path, exc: p11x.PKCS11Error) -> TokenError:
    """Say why dlopen / C_GetFunctionList / C_Initialize failed for ``path``."""
    message = str(exc)
    if "OS exception while loading" in message or "Unknown exception while loading" in message:
        # python-pkcs11 puts dlerror() after the path: keep only that part.
        detail = message.rsplit(": ", 1)[-1] if ": " in message else message
        if "Permission denied" in message or os.strerror(errno.EACCES) in message:
            return _permission_denied(path)
        if "No such file" in message:
            return ModuleLoadError(f"PKCS#11 module {path}: no such file ({detail})", _FIX_PATH)
        if "C_GetFunctionList" in message:
            return ModuleLoadError(
                f"{path} is a shared library but not a PKCS#11 module "
                "(it has no C_GetFunctionList)",
                _FIX_PATH,
            )
        return ModuleLoadError(
            f"{path} is not a loadable PKCS#11 module: {detail}",
            _FIX_PATH,
        )
    code = ckr_name(exc)
    denied = store_access_problem(path)
    if denied is not None:
        return denied
    fix = "check the module's own configuration and logs"
    if code == "CKR_GENERAL_ERROR":
        # SoftHSM2 answers a missing token directory or an unreadable config
        # file with this code and nothing more.
        fix = (
            "for SoftHSM2 this usually means its config file (SOFTHSM2_CONF or "
            "/etc/softhsm/softhsm2.conf) or its token directory is missing or "
            "not readable by this user"
        )
    return ModuleLoadError(f"PKCS#11 module {path} failed to initialise ({code})", fix)


_CKR_SPELLING = {
    "FunctionCancelled": "CKR_FUNCTION_CANCELED",
    "RandomNoRNG": "CKR_RANDOM_NO_RNG",
    "NoSuchToken": "no such token",
    "NoSuchKey": "no such key",
    "MultipleObjectsReturned": "several objects matched",
    "MultipleTokensReturned": "several tokens matched",
}


def ckr_name(exc: BaseException) -> str:
    """The CKR_* name python-pkcs11 raised ``exc`` for (its classes mirror them)."""
    name = type(exc).__name__
    if name in _CKR_SPELLING:
        return _CKR_SPELLING[name]
    if type(exc) is p11x.PKCS11Error:
        # Generic class: the text says what (e.g. "already initialized").
        return f"PKCS11Error: {exc}" if str(exc) else "PKCS11Error"
    return "CKR_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


@contextmanager
def pkcs11_errors(action: str, token: str | None = None) -> Iterator[None]:
    """Translate python-pkcs11 errors raised while doing ``action`` into ours.

    PIN errors become PinIncorrect / PinLocked naming the token; anything
    else becomes TokenOperationFailed naming the CKR_* code. The original
    stays as ``__cause__``.
    """
    try:
        yield
    except TokenError:
        raise
    except p11x.PinIncorrect as exc:
        raise PinIncorrect(
            f"PIN incorrect for token {token!r} (CKR_PIN_INCORRECT); it was not retried",
            "each wrong attempt counts towards the token's lock-out",
        ) from exc
    except (p11x.PinLocked, p11x.PinExpired) as exc:
        raise PinLocked(
            f"the user PIN of token {token!r} is locked or expired ({ckr_name(exc)})",
            "unlock or reset it with the security officer PIN (e.g. `pkcs11-tool --init-pin`)",
        ) from exc
    except (p11x.PinInvalid, p11x.PinLenRange) as exc:
        raise PinIncorrect(
            f"token {token!r} refused the PIN's format ({ckr_name(exc)})",
            "the PIN has the wrong length or characters for this token",
        ) from exc
    except (p11x.DeviceRemoved, p11x.TokenNotPresent) as exc:
        raise TokenOperationFailed(
            f"{action}: token {token!r} was removed ({ckr_name(exc)})",
            "re-insert the token; the agent will find it again on reconnect",
        ) from exc
    except p11x.PKCS11Error as exc:
        where = f" on token {token!r}" if token else ""
        raise TokenOperationFailed(f"{action}{where} failed ({ckr_name(exc)})") from exc

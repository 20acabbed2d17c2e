"""TLS 1.3 client on tlslite-ng, with every cryptographic primitive from ``cryptography``.

tlslite-ng's package ``__init__`` imports its whole public API, and with it
asyncio, http.client, imaplib, smtplib and xmlrpc integrations we never use:
about 7 MB of resident memory and 60 ms of start-up in every agent process.
We register the package without running that ``__init__`` (its submodules
import each other relatively and never need it), unless something imported
tlslite the ordinary way first.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def _register_tlslite_package() -> None:
    if "tlslite" in sys.modules:
        return
    spec = importlib.util.find_spec("tlslite")
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed: the import that needs it will say so
    package = types.ModuleType("tlslite")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__package__ = "tlslite"
    sys.modules["tlslite"] = package


_register_tlslite_package()

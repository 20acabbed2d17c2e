"""Where a private key came from, as the token reports it: generated there, and never out?

    origin = read_key_origin(private_key)     # a python-pkcs11 PrivateKey
    origin.hardware                           # True / False / None (not reported)
    origin.describe()

PKCS#11 sets three attributes that the holder of the key cannot fake:
``CKA_LOCAL`` (generated on the token, not imported), ``CKA_NEVER_EXTRACTABLE``
(``CKA_EXTRACTABLE`` was never true) and ``CKA_ALWAYS_SENSITIVE``
(``CKA_SENSITIVE`` was always true). A key with all three true was made on
the token and can never leave it. A module that does not report one of them
gives "unknown", never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KeyOrigin:
    local: bool | None
    never_extractable: bool | None
    always_sensitive: bool | None

    @property
    def hardware(self) -> bool | None:
        """True: generated on the token and never extractable; False: not; None: unknown."""
        values = (self.local, self.never_extractable, self.always_sensitive)
        if False in values:
            return False
        if None in values:
            return None
        return True

    def describe(self) -> str:
        def text(value: bool | None) -> str:
            return "unknown" if value is None else str(value).lower()

        flags = (
            f"CKA_LOCAL={text(self.local)}, CKA_NEVER_EXTRACTABLE={text(self.never_extractable)}, "
            f"CKA_ALWAYS_SENSITIVE={text(self.always_sensitive)}"
        )
        summary = {
            True: "generated on the token, can never leave it",
            False: "imported or extractable",
            None: "unknown (the module does not report it)",
        }[self.hardware]
        return f"{summary} ({flags})"


def _attribute(key: Any, attribute: Any) -> bool | None:
    from pkcs11 import exceptions as p11x

    try:
        return bool(key[attribute])
    except p11x.PKCS11Error:  # CKR_ATTRIBUTE_TYPE_INVALID and the like: not reported
        return None


def read_key_origin(key: Any) -> KeyOrigin:
    """The three attributes of a python-pkcs11 private key (the caller holds the session lock).

    python-pkcs11 is imported here, not above: ``KeyOrigin`` alone is used in
    socket mode, which never loads it.
    """
    from pkcs11 import Attribute

    return KeyOrigin(
        local=_attribute(key, Attribute.LOCAL),
        never_extractable=_attribute(key, Attribute.NEVER_EXTRACTABLE),
        always_sensitive=_attribute(key, Attribute.ALWAYS_SENSITIVE),
    )

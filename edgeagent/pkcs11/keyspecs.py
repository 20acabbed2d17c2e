"""The key types the agent generates on a token, by the names users type.

Kept apart from ``admin/`` so that building the command line does not
load python-pkcs11 (every `agent` invocation builds the parser).
"""

from __future__ import annotations

from typing import Literal

KeySpec = Literal["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
KEY_SPECS: tuple[KeySpec, ...] = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")
DEFAULT_KEY_SPEC: KeySpec = "ec-p256"
DEFAULT_KEY_LABEL = "device-key"

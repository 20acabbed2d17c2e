"""What SoftHSM2 tokens and the software TPM's token have in common.

- :class:`TokenKey`: a key pair generated on a token (its public half read back).
- :func:`private_key_uri`: the URI naming it, ``id`` %-escaped like p11tool.
- :func:`make_visible`: re-read the token store in this process after a
  change made by another process (a new token, a new TPM key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeagent.pkcs11.module import loaded_module


@dataclass(frozen=True)
class TokenKey:
    """A key pair generated on a token."""

    uri: str
    """``pkcs11:token=...;object=...;id=...;type=private``"""
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    label: str
    id: bytes
    spec: str
    """``ec-p256``, ``rsa-2048``...: what was asked for."""


def private_key_uri(token_label: str, label: str, key_id: bytes) -> str:
    id_text = "".join(f"%{b:02X}" for b in key_id)
    return f"pkcs11:token={token_label};object={label};id={id_text};type=private"


def make_visible(module_path: Path, what: str) -> None:
    """Re-initialise the module if this process loaded it, so ``what`` shows.

    Modules read their token store at C_Initialize only; re-initialising
    needs every session on the module closed (close your signers).
    """
    module = loaded_module(module_path)
    if module is not None and not module.rescan(min_interval=0):
        open_on = [s.description.label for s in module.sessions.values()]
        raise RuntimeError(
            f"{what} invisible: sessions still open on {open_on}; "
            "close the signers of earlier tests"
        )

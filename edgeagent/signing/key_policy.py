"""device.key_policy: which keys the agent accepts, from where the key came.

    origin = key_origin(signer)        # KeyOrigin, or None for a key file
    enforce_key_policy(config, signer) # raises KeyPolicyRefused under 'hardware'

'any' accepts every key. 'hardware' (seed 002's "require" policy) accepts
only a key generated on the token that can never leave it, as the module
reports it (:mod:`edgeagent.pkcs11.origin`). Refused, with the reason: mode
'off' (a key file is extractable by definition), socket mode (the signing
protocol does not carry the attributes yet, so the agent cannot know), a
module that does not report the attributes, an imported or extractable key.
"""

from __future__ import annotations

from edgeagent.config import AgentConfig
from edgeagent.errors import KeyPolicyRefused
from edgeagent.pkcs11.origin import KeyOrigin
from edgeagent.signing.signer import Signer

UNKNOWN = KeyOrigin(None, None, None)


def key_origin(signer: Signer) -> KeyOrigin | None:
    """What the token says of the signer's key; UNKNOWN when it cannot be asked; None: a file."""
    if not signer.cryptoki:
        return None
    read = getattr(signer, "key_origin", None)  # the module signer; the socket cannot say yet
    if read is None:
        return UNKNOWN
    origin: KeyOrigin = read()
    return origin


def describe_origin(signer: Signer) -> str:
    """One line for `cert show` and doctor."""
    origin = key_origin(signer)
    if origin is None:
        return "a key file (extractable by definition)"
    if getattr(signer, "key_origin", None) is None:
        return "unknown (the signing service does not report key attributes)"
    return origin.describe()


def enforce_key_policy(config: AgentConfig, signer: Signer) -> None:
    """Raise KeyPolicyRefused when device.key_policy is 'hardware' and this key is not."""
    if config.device.key_policy != "hardware":
        return
    fix_key = (
        "make a key on the token (agent hsm create-key --new-key) and a certificate for it, "
        "or agent config set device.key_policy any"
    )
    mode = config.device.cryptoki.mode
    if mode == "off":
        raise KeyPolicyRefused(
            "device.key_policy is 'hardware' but device.cryptoki.mode is 'off': the key is a file",
            "put the key on a token (device.cryptoki.mode module), "
            "or agent config set device.key_policy any",
        )
    if mode == "socket":
        raise KeyPolicyRefused(
            "device.key_policy is 'hardware', but in socket mode the signing service does "
            "not report where the key came from (the signing protocol does not carry "
            "CKA_LOCAL / CKA_NEVER_EXTRACTABLE / CKA_ALWAYS_SENSITIVE yet)",
            "use device.cryptoki.mode module for this policy, "
            "or agent config set device.key_policy any",
        )
    origin = key_origin(signer)
    if origin is None or origin.hardware is not True:
        what = "a key file" if origin is None else origin.describe()
        raise KeyPolicyRefused(
            f"device.key_policy is 'hardware' and {signer.location} is {what}", fix_key
        )

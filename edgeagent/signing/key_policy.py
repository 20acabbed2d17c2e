"""device.key_policy: which keys the agent accepts, from where the key came.

    origin = key_origin(signer)        # KeyOrigin, or None for a key file
    enforce_key_policy(config, signer) # raises KeyPolicyRefused under 'hardware'

'any' accepts every key. 'hardware' (seed 002's "require" policy) accepts
only a key generated on the token that can never leave it, as the module
reports it (:mod:`edgeagent.pkcs11.origin`). Refused, with the reason: mode
'off' (a key file is extractable by definition), a module that does not
report the attributes, an imported or extractable key. In socket mode the
signing service reads the attributes (its ``key_origin`` request); a service
too old to know that request is refused with "update the signing service".
"""

from __future__ import annotations

from edgeagent.config import AgentConfig
from edgeagent.errors import KeyPolicyRefused
from edgeagent.pkcs11.origin import KeyOrigin
from edgeagent.signing.signer import Signer
from edgeagent.signing.socket_signer import ServiceTooOld

UNKNOWN = KeyOrigin(None, None, None)


def key_origin(signer: Signer) -> KeyOrigin | None:
    """What the token says of the signer's key; UNKNOWN when it cannot be asked; None: a file."""
    if not signer.cryptoki:
        return None
    read = getattr(signer, "key_origin", None)  # the module and socket signers
    if read is None:
        return UNKNOWN
    origin: KeyOrigin = read()
    return origin


def describe_origin(signer: Signer) -> str:
    """One line for `cert show` and doctor."""
    try:
        origin = key_origin(signer)
    except ServiceTooOld as error:
        return f"unknown ({error.cause}; {error.fix})"
    if origin is None:
        return "a key file (extractable by definition)"
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
    origin = key_origin(signer)
    if origin is None or origin.hardware is not True:
        what = "a key file" if origin is None else origin.describe()
        raise KeyPolicyRefused(
            f"device.key_policy is 'hardware' and {signer.location} is {what}", fix_key
        )

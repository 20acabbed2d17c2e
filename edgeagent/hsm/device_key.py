"""A device key for enrolment: the configured one, or a new one made as `hsm create-key` does.

    made = ensure_device_key(config_dir, "c8y", pins, notify=print)
    made.entry.uri if made else "the configured key is there"

`agent cert download` needs a key before it can ask for a certificate. When
the configured key URI finds none (an empty token, or no token yet in module
mode), the key is created with :func:`edgeagent.hsm.keys.create_key`: on the
token the URI names (else the only one), labelled as the URI says (else the
default), and its URI written to the configuration when none was set. A key
made on the token is generated there, sensitive and non-extractable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edgeagent.config import load_config
from edgeagent.errors import KeyNotFound, TokenNotFound, TokenNotInitialized
from edgeagent.hsm.keys import KeyRequest, create_key
from edgeagent.hsm.policy import PinSource, open_admin
from edgeagent.pkcs11.listings import CreatedKey
from edgeagent.pkcs11.uri import Pkcs11Uri
from edgeagent.signing.open import open_signer


def ensure_device_key(
    config_dir: Path,
    cloud: str,
    pins: PinSource,
    notify: Callable[[str], None] = lambda _: None,
) -> CreatedKey | None:
    """None when the configured key opens; else the key just created for it."""
    config = load_config(config_dir)
    if config.device.cryptoki.mode == "off":
        return None  # a key file: nothing to make on a token
    identity = config.identity(cloud)
    try:
        with open_signer(config, identity):
            return None
    except (KeyNotFound, TokenNotInitialized, TokenNotFound):
        pass
    uri = Pkcs11Uri.parse(identity.key_uri) if identity.key_uri else None
    request = KeyRequest(
        token_uri=uri.token_part() if uri is not None and uri.names_token else None,
        cloud=None if identity.key_uri_key == "device.key_uri" else cloud,
    )
    if uri is not None and uri.object:
        request = replace(request, label=uri.object)
    if uri is not None and uri.id:
        request = replace(request, key_id=uri.id)
    with open_admin(config, pins) as admin:
        outcome = create_key(config_dir, admin, request, pins, notify)
    return outcome.created

"""What every `agent hsm` command shares: the mode, the PINs, the configured key URIs.

    admin = open_admin(config, pins)   # socket mode: no PIN; module mode: pins.user_pin()

``pins`` is how the caller gets a PIN when the work needs one (a file, a
variable, a prompt: the CLI's ``pin_input``); which PIN is needed, and
whether any is, is decided here and in the command modules:

    keys.py         create-key, list-keys, delete-key, and the key of `cert renew --new-key`
    token_setup.py  init and change-pin (module mode only)

Configuration rules:

- ``create-key`` writes the new key's URI to ``device.key_uri`` (or
  ``<cloud>.device.key_uri``) unless that already names *another key that
  exists*; then it leaves it and hands back the ``agent config set``
  command instead (``suggestion``).
- ``delete-key`` refuses a key that any configured key URI
  (``device.key_uri``, ``<cloud>.device.key_uri``, ``device.cryptoki.uri``)
  names, unless forced.
- ``init`` refuses to re-initialise a token a configured key URI points at.
  It stores the user PIN as ``device.cryptoki.pin`` when none is set, and
  ``change-pin`` keeps ``device.cryptoki.pin`` in step with the token.
- ``init`` and ``change-pin`` need the token itself (module mode): both
  carry PINs, and in socket mode the PIN is the signing service's own
  setting; run them with the service's configuration.
"""

from __future__ import annotations

from typing import Protocol

from edgeagent.config import AgentConfig
from edgeagent.errors import ConfigError, TokenError
from edgeagent.hsm.backend import TokenAdmin, open_token_admin
from edgeagent.pkcs11.uri import Pkcs11Uri

SOCKET_MODE_FIX = (
    "run it where the token is configured, as the signing service's user: "
    "agent --config-dir /etc/agent-p11-server hsm {command} ..., "
    "then restart agent-p11-server"
)


class PinSource(Protocol):
    """Where the PINs come from, asked only when the work needs them."""

    def user_pin(self, *, confirm: bool = False) -> str: ...

    def so_pin(self) -> str: ...

    def new_pin(self) -> str: ...


def open_admin(config: AgentConfig, pins: PinSource) -> TokenAdmin:
    """The token's administration; in socket mode the service logs in with its own PIN."""
    if config.device.cryptoki.mode == "socket":
        return open_token_admin(config, None)
    return open_token_admin(config, pins.user_pin())


def configured_key_uris(config: AgentConfig) -> dict[str, Pkcs11Uri]:
    """Every configured key URI by its key name (device.key_uri, c8y.device.key_uri, ...)."""
    found: dict[str, str | None] = {
        "device.key_uri": config.device.key_uri,
        "device.cryptoki.uri": config.device.cryptoki.uri,
    }
    for cloud in config.cloud_names():
        found[f"{cloud}.device.key_uri"] = config.cloud(cloud).device.key_uri
    parsed = {}
    for name, text in found.items():
        if text:
            try:
                parsed[name] = Pkcs11Uri.parse(text)
            except TokenError:
                continue  # a broken URI names nothing; `agent doctor` reports it
    return parsed


def require_module_mode(config: AgentConfig, command: str) -> None:
    if config.device.cryptoki.mode == "socket":
        raise ConfigError(
            f"`agent hsm {command}` needs the token itself, and device.cryptoki.mode is "
            "'socket': the PINs belong to the signing service, not to this agent",
            SOCKET_MODE_FIX.format(command=command),
        )

"""Open the Signer that ``device.cryptoki.mode`` asks for.

    spec = signer_spec(config, config.identity("c8y"))   # resolved, plain values
    signer = open_signer_from(spec)

``SignerSpec`` holds plain values so that a process without the
configuration layer (the bridge's lean runtime) can open the same signer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from edgeagent.errors import MissingConfigValue
from edgeagent.signing.file_signer import FileSigner
from edgeagent.signing.signer import Signer

if TYPE_CHECKING:
    from edgeagent.config import AgentConfig, DeviceIdentity

log = logging.getLogger("edgeagent.signing")


@dataclass(frozen=True)
class SignerSpec:
    mode: Literal["off", "module", "socket"]
    key_uri: str | None = None
    module_path: str | None = None
    pin: str | None = None
    key_pin: str | None = None
    key_pin_key: str = ""
    pin_key: str = "device.cryptoki.pin"
    """Where ``pin`` came from, for messages (an AGENT_* variable is named as such)."""
    socket_path: str | None = None
    key_path: str | None = None

    def __repr__(self) -> str:  # never the PINs
        return f"SignerSpec(mode={self.mode!r}, key_uri={self.key_uri!r})"


def signer_spec(config: AgentConfig, identity: DeviceIdentity) -> SignerSpec:
    """Resolve the configuration into what opening the signer needs."""
    cryptoki = config.device.cryptoki
    if cryptoki.mode == "module":
        from edgeagent.pkcs11.modules import module_for
        from edgeagent.pkcs11.uri import Pkcs11Uri

        uri = Pkcs11Uri.parse(identity.key_uri) if identity.key_uri else None
        return SignerSpec(
            "module",
            key_uri=identity.key_uri,
            module_path=str(module_for(uri, cryptoki.module_path)),
            pin=cryptoki.pin.get_secret_value() if cryptoki.pin is not None else None,
            key_pin=identity.key_pin.get_secret_value() if identity.key_pin is not None else None,
            key_pin_key=identity.key_pin_key,
            pin_key=config.named("device.cryptoki.pin"),
        )
    if cryptoki.mode == "socket":
        if identity.key_pin is not None:
            log.warning(
                "%s is ignored in socket mode: the signing service logs in with its own PIN",
                identity.key_pin_key,
            )
        return SignerSpec("socket", key_uri=identity.key_uri, socket_path=str(cryptoki.socket_path))
    if identity.key_path is None:
        raise MissingConfigValue(
            f"no device key: device.cryptoki.mode is 'off' and {identity.key_path_keys} is not set",
            "agent config set device.key_path /etc/agent/device-certs/device.key, or keep the "
            "key on a token: agent config set device.cryptoki.mode module",
        )
    return SignerSpec("off", key_path=str(identity.key_path))


def open_signer_from(spec: SignerSpec) -> Signer:
    if spec.mode == "module":
        from edgeagent.signing.module_signer import open_module_signer

        assert spec.module_path is not None
        return open_module_signer(
            Path(spec.module_path),
            spec.key_uri,
            spec.pin,
            key_pin=spec.key_pin,
            key_pin_key=spec.key_pin_key or "device.key_pin",
            pin_key=spec.pin_key,
        )
    if spec.mode == "socket":
        from edgeagent.signing.socket_signer import open_socket_signer

        assert spec.socket_path is not None
        return open_socket_signer(Path(spec.socket_path), spec.key_uri)
    assert spec.key_path is not None
    return FileSigner(Path(spec.key_path))


def open_signer(config: AgentConfig, identity: DeviceIdentity) -> Signer:
    """The device key for ``identity.cloud``: on a token (module or socket) or in a file."""
    return open_signer_from(signer_spec(config, identity))

"""Open the Signer that ``device.cryptoki.mode`` asks for."""

from __future__ import annotations

import logging

from pydantic import SecretStr

from edgeagent.config import AgentConfig, DeviceIdentity
from edgeagent.errors import MissingConfigValue
from edgeagent.signing.file_signer import FileSigner
from edgeagent.signing.signer import Signer

log = logging.getLogger("edgeagent.signing")


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def open_signer(config: AgentConfig, identity: DeviceIdentity, cloud: str) -> Signer:
    """The device key for one cloud: on a token (module or socket) or in a file."""
    cryptoki = config.device.cryptoki
    if cryptoki.mode == "module":
        from edgeagent.pkcs11.modules import module_for
        from edgeagent.pkcs11.uri import Pkcs11Uri
        from edgeagent.signing.module_signer import open_module_signer

        uri = Pkcs11Uri.parse(identity.key_uri) if identity.key_uri else None
        return open_module_signer(
            module_for(uri, cryptoki.module_path),
            identity.key_uri,
            _secret(cryptoki.pin),
            key_pin=_secret(identity.key_pin),
            key_pin_key=identity.key_pin_key,
        )
    if cryptoki.mode == "socket":
        from edgeagent.signing.socket_signer import open_socket_signer

        if identity.key_pin is not None:
            log.warning(
                "%s is ignored in socket mode: the signing service logs in with its own PIN",
                identity.key_pin_key,
            )
        return open_socket_signer(cryptoki.socket_path, identity.key_uri)
    if identity.key_path is None:
        raise MissingConfigValue(
            f"no device key: device.cryptoki.mode is 'off' and {cloud}.device.key_path / "
            "device.key_path is not set",
            "agent config set device.key_path /etc/agent/device-certs/device.key, or keep the "
            "key on a token: agent config set device.cryptoki.mode module",
        )
    return FileSigner(identity.key_path)

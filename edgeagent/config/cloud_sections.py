"""The schema's cloud sections: ``c8y``, ``az``, ``aws`` and what every cloud has.

    config.c8y.host_port()          # ("example.cumulocity.com", 8883)
    config.cloud("az").device       # CloudDeviceConfig: az.device.*, unset uses device.*

Each cloud is a ``CloudConfig`` subclass; ``AgentConfig`` (schema.py) has one
field per cloud, named after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from edgeagent.config.fields import AbsPath, HostPort, KeyUri, Pin, Section, key
from edgeagent.config.values import parse_host_port
from edgeagent.errors import MissingConfigValue


class CloudDeviceConfig(Section):
    """``<cloud>.device.*``: unset means "use the device-wide device.* value"."""

    key_uri: KeyUri | None = key(
        "This cloud's device key as a PKCS#11 URI; unset uses device.key_uri.",
        "pkcs11:token=my-token;object=cloud-key",
    )
    cert_path: AbsPath | None = key(
        "This cloud's device certificate (PEM); unset uses device.cert_path.",
        "/etc/agent/device-certs/cloud.pem",
    )
    key_path: AbsPath | None = key(
        "This cloud's device key file (PEM, mode 'off'); unset uses device.key_path.",
        "/etc/agent/device-certs/cloud.key",
    )
    key_pin: Pin | None = key(
        "PIN for this cloud's key's token; unset uses device.key_pin, then the "
        "key URI's pin-source / pin-value, then device.cryptoki.pin.",
        "123456",
    )


def _version_text(value: Any) -> Any:
    # A hand-written `min_version = 1.3` is a TOML float; a version is text.
    if isinstance(value, float):
        return str(value)
    return value


TlsVersion = Literal["1.2", "1.3"]


class CloudTlsConfig(Section):
    """``<cloud>.tls.*``: how the TLS session to the cloud may be made."""

    min_version: Annotated[TlsVersion, BeforeValidator(_version_text)] = key(
        "The oldest TLS version accepted from this cloud. '1.2' (the default): the "
        "client offers TLS 1.3 and 1.2 and the server picks; '1.3': a server that "
        "answers with TLS 1.2 is refused.",
        "1.3",
        default="1.2",
    )


class CloudConfig(Section):
    """What every cloud has: an endpoint, trusted roots, a device identity.

    A cloud is a subclass that sets ``cloud`` (its section name) and
    ``mqtt_port`` and redeclares ``url`` with its own doc and example;
    ``AgentConfig`` gets one field per cloud, named ``cloud``.
    """

    cloud: ClassVar[str]
    mqtt_port: ClassVar[int] = 8883

    url: HostPort | None = key("The cloud's MQTT endpoint, host[:port].", "example.com")
    root_cert_path: AbsPath = key(
        "Trusted root CAs for the cloud's server certificate: a PEM file or a "
        "directory of PEM files.",
        "/etc/ssl/certs",
        default=Path("/etc/ssl/certs"),
    )
    device: CloudDeviceConfig = Field(default_factory=CloudDeviceConfig)
    tls: CloudTlsConfig = Field(default_factory=CloudTlsConfig)

    def host_port(self) -> tuple[str, int]:
        """The endpoint to dial; the cloud's MQTT-over-TLS port unless url names one."""
        name = self.cloud
        if self.url is None:
            raise MissingConfigValue(
                f"{name}.url is not set",
                f"agent config set {name}.url <host[:port]>",
            )
        host, port = parse_host_port(self.url)
        return host, port if port is not None else self.mqtt_port


class C8yConfig(CloudConfig):
    cloud: ClassVar[str] = "c8y"

    url: HostPort | None = key(
        "The Cumulocity tenant's MQTT endpoint, host[:port]; port 8883 when omitted.",
        "example.cumulocity.com",
    )
    http: HostPort | None = key(
        "The Cumulocity tenant's HTTPS endpoint, host[:port] (port 443 when omitted): "
        "where `agent cert download|renew c8y` reach its EST service "
        "(/.well-known/est/...). Unset: c8y.url's host on port 443.",
        "example.cumulocity.com",
    )

    def http_host_port(self) -> tuple[str, int]:
        """The HTTPS endpoint: c8y.http, else c8y.url's host, port 443 unless named."""
        if self.http is not None:
            host, port = parse_host_port(self.http)
            return host, port if port is not None else 443
        host, _ = self.host_port()
        return host, 443


class AzConfig(CloudConfig):
    cloud: ClassVar[str] = "az"

    url: HostPort | None = key(
        "The Azure IoT Hub's host name, <hub>.azure-devices.net; port 8883 when omitted. "
        "The MQTT user name is <host>/<device id>/?api-version=2021-04-12.",
        "my-hub.azure-devices.net",
    )


class AwsConfig(CloudConfig):
    cloud: ClassVar[str] = "aws"

    url: HostPort | None = key(
        "The AWS IoT Core account's ATS endpoint, host[:port]; port 8883 when omitted. "
        "With port 443 the agent offers ALPN 'x-amzn-mqtt-ca' (for firewalls that "
        "only open 443).",
        "abc123xyz-ats.iot.eu-west-1.amazonaws.com",
    )

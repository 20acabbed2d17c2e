"""The configuration schema: every key, its type, default, doc and example.

This is the one place a configuration key is defined. ``agent config list
--doc``, the environment variable names, ``set`` validation and the typed
object the rest of the agent reads all come from these models::

    cfg = load_config(Path("/etc/agent"))
    cfg.device.cryptoki.mode            # "off" | "module" | "socket"
    cfg.identity("c8y").key_uri         # c8y.device.key_uri, else device.key_uri
    cfg.c8y.host_port()                 # ("example.cumulocity.com", 8883)

The sections are pydantic ``BaseModel``s; the whole, ``AgentConfig``, is a
pydantic-settings ``BaseSettings`` whose sources (agent.toml, then AGENT_*
variables) live in :mod:`edgeagent.config.sources`. Built directly,
``AgentConfig(...)`` reads no source: only its arguments over the defaults.
Only full configuration loads pay for pydantic and pydantic-settings: `agent
config get` answers from the generated ``keytable.py`` when it can
(``config/quick.py``), and the bridge's and signing service's lean runtimes
never import this package.

Each field is declared with :func:`key`, which records the doc and the
example; a ``Format`` marker inside an ``Annotated`` type gives the
human-readable description of what the value may be, used in error messages.

Over 400 lines on purpose: this is the one place every key is declared
(three clouds, device, mqtt, run, logs, the signing service), with its doc
and example; splitting it would split that one home.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edgeagent.config.locations import system_default
from edgeagent.config.values import name_list, parse_host, parse_host_port
from edgeagent.errors import MissingConfigValue, UnknownCloud


@dataclass(frozen=True)
class Format:
    """What a value must look like, in the user's words (for error messages)."""

    text: str


def key(doc: str, example: str, default: Any = None) -> Any:
    """A configuration key: its default, its doc string and one example value."""
    return Field(default=default, description=doc, examples=[example])


# -- value types -----------------------------------------------------------------


def _absolute(path: Path) -> Path:
    # A relative path in agent.toml would silently depend on the agent's
    # working directory (/ under systemd). `set` and the environment resolve
    # relative paths against the caller's cwd before they get here.
    if not path.is_absolute():
        raise ValueError(f"must be an absolute path, got {str(path)!r}")
    return path


def _pkcs11_uri(uri: str) -> str:
    # Only the scheme is checked here; RFC 7512 parsing belongs to
    # edgeagent.pkcs11, which the config layer must not import.
    if not uri.startswith("pkcs11:"):
        raise ValueError("must be a PKCS#11 URI starting with 'pkcs11:'")
    if re.search(r"(?i)[?&]pin-value=", uri):
        # A PIN inside a URI escapes everything that keeps PINs secret
        # (masked output, mode 0600): it has a key of its own.
        raise ValueError(
            "must not hold a pin-value: put the PIN in device.key_pin (or "
            "<cloud>.device.key_pin), or point pin-source at a file"
        )
    return uri


def _pin_text(value: Any) -> Any:
    # A hand-written `pin = 123456` is a TOML integer; a PIN is text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _host_port(value: str) -> str:
    parse_host_port(value)
    return value


def _host(value: str) -> str:
    return parse_host(value)


AbsPath = Annotated[Path, AfterValidator(_absolute), Format("an absolute path")]
KeyUri = Annotated[
    str,
    AfterValidator(_pkcs11_uri),
    Format("a PKCS#11 URI (RFC 7512) starting with 'pkcs11:'"),
]
HostPort = Annotated[
    str,
    AfterValidator(_host_port),
    Format("host[:port] without a scheme, port 1-65535"),
]
Host = Annotated[
    str, AfterValidator(_host), Format("a host name or IP address, no scheme, port or path")
]
Pin = Annotated[SecretStr, BeforeValidator(_pin_text), Format("the token's user PIN")]
Port = Annotated[int, Field(ge=1, le=65535), Format("a port number, 1-65535")]
CryptokiMode = Literal["off", "module", "socket"]
KeyPolicy = Literal["any", "hardware"]


class Section(BaseModel):
    # forbid: a misspelt key in agent.toml (`modul_path`) must be an error,
    # not a silently ignored line that leaves the key on disk.
    # frozen: a loaded configuration is a value; edits go through the file.
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- device ------------------------------------------------------------------------


class CryptokiConfig(Section):
    mode: CryptokiMode = key(
        "Where the device's private key is used. 'off': a key file on disk "
        "(device.key_path). 'module': the agent loads the PKCS#11 module and signs "
        "on the token. 'socket': the agent asks the signing service "
        "(`agent p11-server`) over a Unix socket and never sees the module or the PIN.",
        "module",
        default="off",
    )
    module_path: AbsPath | None = key(
        "The PKCS#11 module (shared library) to load in 'module' mode, and which "
        "the signing service loads in 'socket' mode.",
        "/usr/lib/softhsm/libsofthsm2.so",
    )
    pin: Pin | None = key(
        "The token's user PIN. Never printed by `list`, only by `get --reveal`; "
        "agent.toml is kept mode 0600 while it holds a PIN.",
        "123456",
    )
    uri: KeyUri | None = key(
        "The token (or key) the signing service serves, as a PKCS#11 URI; "
        "unset means the first token with a usable key.",
        "pkcs11:token=my-token",
    )
    socket_path: AbsPath = key(
        "The signing service's Unix socket, used in 'socket' mode.",
        "/run/agent-p11-server/agent-p11-server.sock",
        default=Path("/run/agent-p11-server/agent-p11-server.sock"),
    )


class DeviceConfig(Section):
    cryptoki: CryptokiConfig = Field(default_factory=CryptokiConfig)
    key_uri: KeyUri | None = key(
        "The device's private key on the token, as a PKCS#11 URI (what `p11tool "
        "--list-privkeys --only-urls` prints). With no URI, or one naming only a "
        "token, the first usable key is chosen with a warning. A cloud's "
        "<cloud>.device.key_uri overrides it.",
        "pkcs11:token=my-token;object=my-key",
    )
    key_path: AbsPath | None = key(
        "The device's private key as a PEM file, used when device.cryptoki.mode is 'off'.",
        "/etc/agent/device-certs/device.key",
    )
    cert_path: AbsPath | None = key(
        "The device certificate (PEM). Its CN is the device id. Default with a "
        "configuration directory of your own (--config-dir DIR): DIR/device-certs/device.pem.",
        "/etc/agent/device-certs/device.pem",
        default=system_default("device.cert_path"),
    )
    key_pin: Pin | None = key(
        "PIN for the device key's token when it differs from device.cryptoki.pin. "
        "PIN precedence, most specific first: <cloud>.device.key_pin, "
        "device.key_pin, the key URI's pin-source (a file), its pin-value, "
        "device.cryptoki.pin.",
        "123456",
    )
    key_policy: KeyPolicy = key(
        "Which device keys the agent accepts. 'any': whatever key is configured. "
        "'hardware': only a key generated on the token that can never leave it "
        "(CKA_LOCAL, CKA_NEVER_EXTRACTABLE and CKA_ALWAYS_SENSITIVE all true): an "
        "imported or extractable key, one whose module does not report these and mode "
        "'off' (a key file) are refused by connect, doctor, renew and the CSR and "
        "certificate commands. In socket mode the signing service reports them.",
        "hardware",
        default="any",
    )


@dataclass(frozen=True)
class DeviceIdentity:
    """The key and certificate one cloud connection uses, overrides applied.

    The one place that decides between ``<cloud>.device.*`` and ``device.*``
    (:meth:`AgentConfig.identity`); each value that can be wrong comes with the
    configuration key it was read from, so a message names the key to fix.
    """

    cloud: str
    key_uri: str | None
    key_path: Path | None
    cert_path: Path | None
    key_uri_key: str = "device.key_uri"
    """Which configuration key ``key_uri`` came from (or would come from, when unset)."""
    cert_path_key: str = "device.cert_path"
    """Which configuration key ``cert_path`` came from (for messages)."""
    key_pin: SecretStr | None = None
    key_pin_key: str = ""
    """Which configuration key ``key_pin`` came from (for messages)."""

    @property
    def key_path_keys(self) -> str:
        """The keys that would set ``key_path``, most specific first (for messages)."""
        return f"{self.cloud}.device.key_path / device.key_path"


# -- clouds ------------------------------------------------------------------------


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


# -- local broker, files -----------------------------------------------------------


class MqttClientConfig(Section):
    host: Host = key("The local MQTT broker's host.", "127.0.0.1", default="127.0.0.1")
    port: Port = key("The local MQTT broker's port.", "1883", default=1883)


class MqttBridgeConfig(Section):
    built_in: bool = key(
        "Bridge to the cloud with the agent's built-in bridge (true) rather than "
        "the local broker's own bridge (false).",
        "true",
        default=True,
    )


class MqttConfig(Section):
    client: MqttClientConfig = Field(default_factory=MqttClientConfig)
    bridge: MqttBridgeConfig = Field(default_factory=MqttBridgeConfig)


class RunConfig(Section):
    path: AbsPath = key(
        "Runtime directory: pid files of bridges started without systemd. Default with "
        "a configuration directory of your own (--config-dir DIR): DIR/run.",
        "/run/agent",
        default=system_default("run.path"),
    )


class LogsConfig(Section):
    path: AbsPath = key(
        "Directory for the agent's log files. Default with a configuration directory "
        "of your own (--config-dir DIR): DIR/logs.",
        "/var/log/agent",
        default=system_default("logs.path"),
    )


NameList = Annotated[str, AfterValidator(name_list), Format("comma-separated names or numeric ids")]


class P11ServerConfig(Section):
    socket_group: str | None = key(
        "Group that owns the signing service's socket (mode 0660). Unset: the "
        "service's own primary group.",
        "agent",
    )
    allowed_users: NameList = key(
        "Users (names or uids) the signing service serves, besides its own user. "
        "Checked with SO_PEERCRED on every connection.",
        "agent,1000",
        default="",
    )
    allowed_groups: NameList = key(
        "Groups (names or gids) whose members the signing service serves. "
        "Unset: the socket's group.",
        "agent",
        default="",
    )


# -- the whole file ------------------------------------------------------------------


class AgentConfig(BaseSettings):
    """The whole configuration: agent.toml plus AGENT_* overrides, validated."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    c8y: C8yConfig = Field(default_factory=C8yConfig)
    az: AzConfig = Field(default_factory=AzConfig)
    aws: AwsConfig = Field(default_factory=AwsConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    logs: LogsConfig = Field(default_factory=LogsConfig)
    p11_server: P11ServerConfig = Field(default_factory=P11ServerConfig)

    _from_environment: frozenset[str] = PrivateAttr(default=frozenset())
    """The dotted keys an AGENT_* variable set (filled by sources.load_with_sources)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Our own sources are given per load (sources.load_with_sources, with
        # the config directory and environment it reads); pydantic-settings'
        # defaults would read AGENT_-less variable names and .env files.
        return (init_settings,)

    def named(self, key: str) -> str:
        """How a message names where ``key``'s value came from, so the fix goes there.

        ``device.cryptoki.pin`` from agent.toml or the defaults, else
        ``AGENT_DEVICE_CRYPTOKI_PIN (environment, device.cryptoki.pin)``.
        """
        if key not in self._from_environment:
            return key
        from edgeagent.config.keys import env_var_name

        return f"{env_var_name(key)} (environment, {key})"

    @classmethod
    def cloud_names(cls) -> tuple[str, ...]:
        """Every cloud section, in schema order (``("c8y", "az", "aws")``)."""
        return tuple(
            name
            for name, field in cls.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, CloudConfig)
        )

    def cloud(self, name: str) -> CloudConfig:
        if name not in self.cloud_names():
            raise UnknownCloud(
                f"no cloud named {name!r}",
                f"use one of: {', '.join(self.cloud_names())}",
            )
        section = getattr(self, name)
        assert isinstance(section, CloudConfig)
        return section

    def identity(self, cloud: str) -> DeviceIdentity:
        """The device identity for one cloud: each <cloud>.device.* key, else device.*."""
        own = self.cloud(cloud).device
        device = self.device
        return DeviceIdentity(
            cloud=cloud,
            key_uri=own.key_uri if own.key_uri is not None else device.key_uri,
            key_uri_key=(
                f"{cloud}.device.key_uri" if own.key_uri is not None else "device.key_uri"
            ),
            key_path=own.key_path if own.key_path is not None else device.key_path,
            cert_path=own.cert_path if own.cert_path is not None else device.cert_path,
            cert_path_key=(
                f"{cloud}.device.cert_path" if own.cert_path is not None else "device.cert_path"
            ),
            key_pin=own.key_pin if own.key_pin is not None else device.key_pin,
            key_pin_key=(
                self.named(f"{cloud}.device.key_pin")
                if own.key_pin is not None
                else self.named("device.key_pin")
                if device.key_pin is not None
                else ""
            ),
        )

"""The configuration schema: every key, its type, default, doc and example.

This module and ``cloud_sections.py`` (the clouds' sections) are the one
place a configuration key is defined. ``agent config list
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

Each key is declared once, in its section, with :func:`key` (its doc and
example; ``fields.py``, with the value types). The device, local broker,
files and signing service sections are here; the clouds' in
``cloud_sections.py``; ``AgentConfig`` below puts them all together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, PrivateAttr, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edgeagent.config.cloud_sections import AwsConfig, AzConfig, C8yConfig, CloudConfig
from edgeagent.config.fields import (
    AbsPath,
    CryptokiMode,
    Host,
    KeyPolicy,
    KeyUri,
    NameList,
    Pin,
    Port,
    Section,
    key,
)
from edgeagent.config.locations import system_default
from edgeagent.errors import UnknownCloud

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

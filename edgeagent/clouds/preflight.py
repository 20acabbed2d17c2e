"""The checks before a bridge starts: everything that does not touch the cloud's MQTT session.

    config, profile = read_configuration(config_dir, "c8y", progress)
    checked = check_device_and_cloud(config, profile, progress)   # raises at the first failure

Configuration, rules file, certificate and key (the signer: token, PIN,
signing service), and a TLS handshake with the cloud as the device that
stops before MQTT CONNECT (bridge/probe.py: a CONNECT with the device's
client id would log into the bridge's persistent session, taking it over
from a running bridge and being handed the messages queued for it).
`agent connect` runs them before it starts the bridge, `agent reconnect`
before it stops the running one, so a failure leaves a working bridge
alone; `agent doctor` runs the same cloud check (:func:`check_cloud_tls`)
and rules check (:func:`read_rules`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgeagent.bridge.probe import HandshakeResult, check_handshake
from edgeagent.bridge.rules import TopicRules
from edgeagent.clouds.device import Device, open_device
from edgeagent.clouds.profile import CloudProfile
from edgeagent.clouds.registry import cloud_profile
from edgeagent.config import AgentConfig, config_file, load_config
from edgeagent.errors import ConfigError
from edgeagent.signing.open import signer_spec


class Progress(Protocol):
    """Where the checks report what they do (the CLI prints it)."""

    def detail(self, name: str, value: str) -> None: ...

    def step(self, label: str) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class Checked:
    """What the checks found: enough to start the bridge and to report."""

    config: AgentConfig
    profile: CloudProfile
    rules: TopicRules
    device_id: str
    handshake: HandshakeResult


def load_cloud(config_dir: Path, cloud: str) -> tuple[AgentConfig, CloudProfile]:
    """The configuration and the cloud's profile; only the built-in bridge is supported."""
    config = load_config(config_dir)
    profile = cloud_profile(cloud, config, config_dir)
    if not config.mqtt.bridge.built_in:
        raise ConfigError(
            "mqtt.bridge.built_in is false, but only the built-in bridge can sign with a "
            "key held on a token (mosquitto's bridge needs the key in a file)",
            "agent config set mqtt.bridge.built_in true",
        )
    return config, profile


def read_configuration(
    config_dir: Path, cloud: str, progress: Progress
) -> tuple[AgentConfig, CloudProfile]:
    with progress.step("Reading the configuration"):
        config, profile = load_cloud(config_dir, cloud)
    progress.detail("configuration", str(config_file(config_dir)))
    progress.detail("cloud host", f"{profile.host}:{profile.port}")
    return config, profile


def check_device_and_cloud(
    config: AgentConfig, profile: CloudProfile, progress: Progress
) -> Checked:
    """Key and certificate, rules, then the TLS handshake (no MQTT); raise at the first failure."""
    with progress.step("Checking the device certificate and key"):
        device = open_device(config, profile)
    try:
        progress.detail("device id", device.device_id)
        # A broken rules file is this step's error, not a bridge that dies at start.
        with progress.step("Reading the bridge rules"):
            rules = read_rules(profile, device.device_id)
        progress.detail("rules", str(profile.rules_path))
        progress.detail("certificate file", str(device.certificate.path))
        progress.detail("key access", key_access(config, profile))
        progress.detail("key", device.signer.location)
        progress.detail("bridge", "built-in")
        # The step names the TLS version the server chose, so it is printed
        # once the handshake is over (✗ on a failure, as for every step).
        try:
            handshake = check_cloud_tls(device, profile)
        except BaseException:
            with progress.step(f"Connecting to {profile.title}"):
                raise
        with progress.step(
            f"Connecting to {profile.title} over {device.tls.last_handshake.version}"
        ):
            pass
        verdict = (
            "the cloud accepted the device certificate"
            if handshake.accepted
            else "no refusal of the device certificate"
        )
        progress.detail(
            "TLS handshake", f"{device.tls.last_handshake.seconds * 1000:.1f} ms, {verdict}"
        )
        return Checked(config, profile, rules, device.device_id, handshake)
    finally:
        device.close()


def read_rules(profile: CloudProfile, device_id: str) -> TopicRules:
    return TopicRules.load(profile.rules_path, device_id=device_id)


def check_cloud_tls(device: Device, profile: CloudProfile) -> HandshakeResult:
    """The TLS handshake with the cloud as the device; stops before MQTT CONNECT."""
    return check_handshake(device.cloud_endpoint(profile))


def key_access(config: AgentConfig, profile: CloudProfile) -> str:
    """How the agent reaches the key: ``module (/usr/lib/softhsm/libsofthsm2.so)``."""
    spec = signer_spec(config, profile.identity)
    if spec.mode == "module":
        return f"module ({spec.module_path})"
    if spec.mode == "socket":
        return f"socket (signing service at {spec.socket_path})"
    return f"off (key file {spec.key_path})"

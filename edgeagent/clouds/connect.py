"""`agent connect|disconnect|reconnect <cloud>` and the bridge's foreground run.

Every step reports to a ``Progress`` (the CLI prints it); failures are our
errors, raised at the first step that fails, so the user sees which step
and what to fix.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.bridge.cert_check import CertCheck
from edgeagent.bridge.plan import BridgePlan
from edgeagent.bridge.probe import probe
from edgeagent.bridge.rules import TopicRules, topic_matches
from edgeagent.bridge.service import BridgeService
from edgeagent.bridge.status_file import status_path
from edgeagent.clouds.device import open_device
from edgeagent.clouds.profile import CloudProfile, RoundTrip
from edgeagent.clouds.registry import cloud_profile
from edgeagent.clouds.round_trip import round_trip
from edgeagent.config import AgentConfig, config_file, load_config
from edgeagent.errors import ConfigError, ServiceError
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.certificate import read_device_certificate
from edgeagent.signing.open import signer_spec

log = logging.getLogger("edgeagent.clouds")

HEALTH_TIMEOUT = 90.0  # a TPM signs slowly; the bridge handshakes once more


class Progress(Protocol):
    """Where connect reports what it does (the CLI prints it)."""

    def detail(self, name: str, value: str) -> None: ...

    def step(self, label: str) -> AbstractContextManager[None]: ...


def _service(config: AgentConfig, config_dir: Path, cloud: str) -> BridgeService:
    return BridgeService(cloud, config_dir, config.run.path, config.logs.path)


def _local_endpoint(config: AgentConfig, profile: CloudProfile) -> Endpoint:
    return Endpoint(
        name="local",
        host=config.mqtt.client.host,
        port=config.mqtt.client.port,
        client_id=f"agent-bridge-{profile.name}",
        connect_timeout=10.0,
        max_inflight=100,
    )


def _load(config_dir: Path, cloud: str) -> tuple[AgentConfig, CloudProfile]:
    config = load_config(config_dir)
    profile = cloud_profile(cloud, config, config_dir)
    if not config.mqtt.bridge.built_in:
        raise ConfigError(
            "mqtt.bridge.built_in is false, but only the built-in bridge can sign with a "
            "key held on a token (mosquitto's bridge needs the key in a file)",
            "agent config set mqtt.bridge.built_in true",
        )
    return config, profile


def connect(config_dir: Path, cloud: str, progress: Progress) -> None:
    """Check everything, start the bridge, wait until it reports the cloud up, and
    prove the cloud answers (a request through the bridge and its answer)."""
    with progress.step("Reading the configuration"):
        config, profile = _load(config_dir, cloud)
    progress.detail("configuration", str(config_file(config_dir)))
    progress.detail("cloud host", f"{profile.host}:{profile.port}")
    service = _service(config, config_dir, cloud)
    if service.is_running():
        raise ServiceError(
            f"already connected to {profile.title}: the bridge is running "
            f"({service.describe_running()})",
            f"agent reconnect {cloud}   (or agent disconnect {cloud})",
        )

    with progress.step("Checking the device certificate and key"):
        device = open_device(config, profile)
    try:
        progress.detail("device id", device.device_id)
        # A broken rules file is this step's error, not a bridge that dies at start.
        with progress.step("Reading the bridge rules"):
            rules = TopicRules.load(profile.rules_path, device_id=device.device_id)
        progress.detail("rules", str(profile.rules_path))
        progress.detail("certificate file", str(device.certificate.path))
        progress.detail("cryptoki", "true" if device.signer.cryptoki else "false")
        progress.detail("key", device.signer.location)
        progress.detail("bridge", "built-in")
        # The step names the TLS version the server chose, so it is printed
        # once the handshake is over (✗ on a failure, as for every step).
        try:
            result = probe(device.cloud_endpoint(profile))
        except BaseException:
            with progress.step(f"Connecting to {profile.title}"):
                raise
        with progress.step(
            f"Connecting to {profile.title} over {device.tls.last_handshake.version}"
        ):
            pass
        progress.detail(
            "TLS handshake",
            f"{device.tls.last_handshake.seconds * 1000:.1f} ms "
            f"(with CONNACK {result.connack_seconds * 1000:.1f} ms)",
        )
    finally:
        device.close()

    with progress.step("Starting the bridge"):
        how = service.start()
    progress.detail("service", how)
    with progress.step(f"Verifying the device is connected to {profile.title}"):
        wait_until_healthy(config, profile, service)
    check = profile.round_trip
    if check is not None and not _carries(rules, check):
        # A user's rules file without the check's topics: nothing to prove it with.
        progress.detail(
            f"{profile.title} answers",
            f"not checked: the bridge rules ({profile.rules_path}) do not carry "
            f"{check.request.format(n='<n>')} and {check.answer.format(n='<n>')}",
        )
    elif check is not None:
        with progress.step(f"Checking that {profile.title} answers"):
            seconds = round_trip(config, profile)
        progress.detail("round trip", f"{seconds * 1000:.0f} ms")


def _carries(rules: TopicRules, check: RoundTrip) -> bool:
    """Whether the rules forward the check's request out and carry some topic in
    that could be its answer (the answer's remote name is the cloud's to choose)."""
    answer = check.answer.format(n=1)
    return rules.to_remote(check.request.format(n=1)) is not None and any(
        rule.inbound and topic_matches(rule.local_filter, answer) for rule in rules.rules
    )


def disconnect(config_dir: Path, cloud: str, progress: Progress) -> bool:
    """Stop the bridge; False (and no error) when it was not running."""
    config = load_config(config_dir)
    profile = cloud_profile(cloud, config, config_dir)
    service = _service(config, config_dir, cloud)
    if not service.is_running():
        progress.detail(profile.title, "not connected (no bridge running)")
        return False
    with progress.step(f"Stopping the {profile.title} bridge"):
        service.stop()
    return True


def wait_until_healthy(config: AgentConfig, profile: CloudProfile, service: BridgeService) -> None:
    """Watch the bridge's retained health message on the local broker."""
    status: dict[str, Any] = {}
    changed = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            status.update(json.loads(message.payload))
        except ValueError:
            return
        changed.set()

    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    watcher.on_message = on_message
    watcher.on_connect = lambda c, *_: c.subscribe(profile.health_topic, 1)
    try:
        watcher.connect(config.mqtt.client.host, config.mqtt.client.port)
    except OSError as error:
        raise ServiceError(
            f"cannot reach the local broker {config.mqtt.client.host}:{config.mqtt.client.port} "
            f"to check the bridge: {error}",
            "start the local broker (mosquitto) or fix mqtt.client.host / mqtt.client.port",
        ) from error
    watcher.loop_start()
    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while time.monotonic() < deadline:
            if status.get("status") == "up":
                return
            if not service.is_running():
                raise ServiceError(
                    "the bridge stopped:\n" + service.log_tail(), f"see {service.log_file}"
                )
            changed.wait(0.2)
            changed.clear()
        raise ServiceError(
            f"the bridge did not report {profile.title} connected within "
            f"{HEALTH_TIMEOUT:.0f} s (last: {status.get('reason', 'no status')})",
            f"see {service.log_file}",
        )
    finally:
        watcher.loop_stop()
        watcher.disconnect()


def bridge_plan(config_dir: Path, cloud: str) -> BridgePlan:
    """Validate the configuration for ``cloud`` and resolve what the bridge runs with."""
    config, profile = _load(config_dir, cloud)
    local = _local_endpoint(config, profile)
    identity = profile.identity
    certificate = read_device_certificate(identity.cert_path, identity.cert_path_key)
    return BridgePlan(
        cloud=profile.name,
        title=profile.title,
        local_host=local.host,
        local_port=local.port,
        local_client_id=local.client_id,
        cloud_host=profile.host,
        cloud_port=profile.port,
        cloud_client_id=certificate.device_id,
        cloud_username=profile.username(certificate.device_id),
        alpn=[a.decode() for a in profile.alpn],
        cert_path=str(certificate.path),
        cert_path_key=identity.cert_path_key,
        root_cert_path=str(profile.root_cert_path),
        rules_path=str(profile.rules_path),
        health_topic=profile.health_topic,
        max_qos=profile.max_qos,
        forwards_retain=profile.forwards_retain,
        max_payload=profile.max_payload,
        signer=signer_spec(config, identity),
        tls_min_version=profile.tls_min_version,
        cert_check=_cert_check(config_dir, config, profile.name),
        status_path=str(status_path(config.run.path, profile.name)),
    )


def _cert_check(config_dir: Path, config: AgentConfig, cloud: str) -> CertCheck | None:
    """The bridge checks its certificate daily unless systemd's timer does (packaging/)."""
    service = BridgeService(cloud, config_dir, config.run.path, config.logs.path)
    if service.manager == "systemd":
        return None
    return CertCheck(
        cloud, str(config_dir.resolve()), str(config.run.path / f"cert-check-{cloud}.stamp")
    )

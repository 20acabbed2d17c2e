"""`agent connect|disconnect|reconnect <cloud>` and the bridge's foreground run.

Every step reports to a ``Progress`` (the CLI prints it); failures are our
errors, raised at the first step that fails, so the user sees which step
and what to fix.

    connect:    checks (preflight.py) -> start the bridge -> its CONNACK -> the round trip
    reconnect:  checks -> stop the running bridge -> start -> CONNACK -> round trip

The checks never touch the cloud's MQTT session, so `reconnect` runs them
while the old bridge still runs and stops it only when they pass. What
fails after the bridge started stops that bridge again (the error says so),
so the next `agent connect` starts from scratch; only a cloud that does not
answer the round trip (exit 62) leaves the bridge running, and says so.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgeagent.bridge.cert_check import CertCheck
from edgeagent.bridge.plan import BridgePlan
from edgeagent.bridge.rules import TopicRules, topic_matches
from edgeagent.bridge.service import BridgeService
from edgeagent.bridge.status_file import status_path
from edgeagent.clouds.health_watch import HealthWatcher
from edgeagent.clouds.preflight import (
    Checked,
    Progress,
    check_device_and_cloud,
    load_cloud,
    read_configuration,
)
from edgeagent.clouds.profile import CloudProfile, RoundTrip
from edgeagent.clouds.registry import cloud_profile
from edgeagent.clouds.round_trip import round_trip
from edgeagent.config import AgentConfig, load_config
from edgeagent.errors import AgentError, BridgeAlreadyRunning, CloudDidNotAnswer
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.certificate import read_device_certificate
from edgeagent.signing.open import signer_spec

__all__ = ["Progress", "bridge_plan", "connect", "disconnect", "reconnect"]


def _service(config: AgentConfig, config_dir: Path, cloud: str) -> BridgeService:
    return BridgeService.of(cloud, config_dir, config)


def _local_endpoint(config: AgentConfig, profile: CloudProfile) -> Endpoint:
    return Endpoint(
        name="local",
        host=config.mqtt.client.host,
        port=config.mqtt.client.port,
        client_id=f"agent-bridge-{profile.name}",
        connect_timeout=10.0,
        max_inflight=100,
    )


def connect(config_dir: Path, cloud: str, progress: Progress) -> None:
    """Check everything, start the bridge, wait until it reports the cloud up, and
    prove the cloud answers (a request through the bridge and its answer)."""
    config, profile = read_configuration(config_dir, cloud, progress)
    service = _service(config, config_dir, cloud)
    # A step of its own, so a refusal ends stdout on ✗, not on the last ✓.
    with progress.step(f"Checking that no {profile.title} bridge runs"):
        if service.is_running():
            raise BridgeAlreadyRunning(
                f"already connected to {profile.title}: the bridge is running "
                f"({service.describe_running()})",
                f"agent reconnect {cloud}   (or agent disconnect {cloud})",
            )
    checked = check_device_and_cloud(config, profile, progress)
    _start_and_verify(checked, service, progress)


def reconnect(config_dir: Path, cloud: str, progress: Progress) -> None:
    """connect, but the running bridge is stopped only once every check has passed.

    A failed check leaves the running bridge as it was, and the error says so.
    """
    config, profile = read_configuration(config_dir, cloud, progress)
    service = _service(config, config_dir, cloud)
    try:
        checked = check_device_and_cloud(config, profile, progress)
    except AgentError as error:
        _left_running(error, service, profile)
        raise
    _start_and_verify(checked, service, progress, restart=True)


def _left_running(error: AgentError, service: BridgeService, profile: CloudProfile) -> None:
    """Say that a failed check stopped nothing (when a bridge runs)."""
    if service.is_running():
        error.add_note(f"the running {profile.title} bridge was not stopped: it runs on as it was")


def _start_and_verify(
    checked: Checked, service: BridgeService, progress: Progress, *, restart: bool = False
) -> None:
    profile, cloud = checked.profile, checked.profile.name
    # Watching from before the start: the local broker is checked before anything
    # is stopped or started, and no health message of the new bridge is missed.
    watcher = HealthWatcher(checked.config, profile)
    try:
        with progress.step("Reaching the local broker"):
            watcher.open()
    except AgentError as error:
        if restart:
            _left_running(error, service, profile)
        raise
    progress.detail("local broker", watcher.where)
    try:
        started = time.time()
        if restart and service.is_running():
            # One step: the host stops the old bridge and starts the new one,
            # never touching connected-clouds or the systemd unit.
            with progress.step(f"Restarting the running {profile.title} bridge"):
                how = service.restart()
        else:
            with progress.step("Starting the bridge"):
                how = service.start()
        progress.detail("service", how)
        try:
            with progress.step(f"Verifying the device is connected to {profile.title}"):
                watcher.wait_up(service, since=started)
            _check_answers(checked, progress)
        except CloudDidNotAnswer as error:
            error.add_note(
                f"the {profile.title} bridge: {how}; `agent disconnect {cloud}` stops it"
            )
            raise
        except BaseException as error:
            _stop_after_failure(error, service, profile)
            raise
    finally:
        watcher.close()


def _stop_after_failure(
    error: BaseException, service: BridgeService, profile: CloudProfile
) -> None:
    """Stop the bridge this command started, and say so (or that stopping failed too)."""
    try:
        service.stop()
    except AgentError as stop_error:
        if isinstance(error, AgentError):
            error.add_note(
                f"the bridge that was started could not be stopped: {stop_error.cause}; "
                f"`agent disconnect {profile.name}` stops it"
            )
        return
    if isinstance(error, AgentError):
        error.add_note(
            f"the bridge that was started has been stopped: nothing runs for "
            f"{profile.title}; `agent connect {profile.name}` tries again"
        )


def _check_answers(checked: Checked, progress: Progress) -> None:
    profile, check = checked.profile, checked.profile.round_trip
    if check is not None and not _carries(checked.rules, check):
        # A user's rules file without the check's topics: nothing to prove it with.
        progress.detail(
            f"{profile.title} answers",
            f"not checked: the bridge rules ({profile.rules_path}) do not carry "
            f"{check.request.format(n='<n>')} and {check.answer.format(n='<n>')}",
        )
    elif check is not None:
        with progress.step(f"Checking that {profile.title} answers"):
            seconds = round_trip(checked.config, profile)
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


def bridge_plan(config_dir: Path, cloud: str) -> BridgePlan:
    """Validate the configuration for ``cloud`` and resolve what the bridge runs with."""
    config, profile = load_cloud(config_dir, cloud)
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
    service = BridgeService.of(cloud, config_dir, config)
    if service.manager == "systemd":
        return None
    return CertCheck(
        cloud, str(config_dir.resolve()), str(config.run.path / f"cert-check-{cloud}.stamp")
    )

"""`agent doctor <cloud>`: walk the chain from the configuration to the cloud.

    for result in diagnose(config_dir, "c8y"):
        print("✓" if result.ok else "✗", result.label, result.detail)

Each link is checked on its own, in order, and the walk stops at the first
failure (the later links depend on it), whose error carries the fix. It is
stricter than `agent connect`: a key URI that matches several keys fails.

Doctor never sends an MQTT CONNECT as the device: that would log into the
bridge's persistent session on the cloud (taking it over from a running
bridge, and being handed the messages queued for it). The cloud is checked
with connect's TLS handshake (preflight.py), which stops before MQTT; the
MQTT side is the running bridge's own connection, read from its health
topic, and the round trip through it. Without a running bridge those two
are "not checked" (`agent connect` checks them).
"""

from __future__ import annotations

import datetime
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.bridge.health import reported_error
from edgeagent.bridge.service import BridgeService
from edgeagent.clouds.device import Device
from edgeagent.clouds.health_watch import HealthWatcher
from edgeagent.clouds.local_checks import local_checks
from edgeagent.clouds.preflight import check_cloud_tls, read_rules
from edgeagent.clouds.profile import CloudProfile
from edgeagent.clouds.registry import cloud_profile
from edgeagent.clouds.round_trip import round_trip
from edgeagent.config import AgentConfig, config_file, load_config
from edgeagent.errors import (
    AgentError,
    BrokerUnreachable,
    CertificateNotValidNow,
    KeyNotFound,
    ServiceError,
)
from edgeagent.signing.certificate import DeviceCertificate, read_device_certificate
from edgeagent.signing.key_policy import describe_origin, enforce_key_policy
from edgeagent.signing.match import check_matches_certificate
from edgeagent.signing.open import open_signer
from edgeagent.signing.signer import Signer
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors

if TYPE_CHECKING:
    from edgeagent.pkcs11.uri import Pkcs11Uri


RENEWAL_WARNING = datetime.timedelta(days=30)
"""Doctor warns when the device certificate has less than this left (the timer renews then)."""


@dataclass(frozen=True)
class CheckResult:
    label: str
    ok: bool
    detail: str = ""
    error: AgentError | None = None
    skipped: bool = False  # could not be checked now (detail says why): neither ✓ nor ✗


@dataclass
class _State:
    config_dir: Path
    cloud: str
    config: AgentConfig | None = None
    profile: CloudProfile | None = None
    signer: Signer | None = None
    certificate: DeviceCertificate | None = None
    warnings: list[str] = field(default_factory=list)


def diagnose(config_dir: Path, cloud: str) -> Iterator[CheckResult]:
    """Run every check in order; stop after the first failure."""
    state = _State(config_dir, cloud)
    try:
        for label, check in _checks(state):
            try:
                detail = check()
            except NotChecked as reason:
                yield CheckResult(label, True, str(reason), skipped=True)
                continue
            except AgentError as error:
                yield CheckResult(label, False, error=error)
                return
            yield CheckResult(label, True, detail)
    finally:
        if state.signer is not None:
            state.signer.close()


def _checks(state: _State) -> Iterator[tuple[str, Callable[[], str]]]:
    yield "configuration read", lambda: _read_config(state)
    assert state.config is not None
    mode = state.config.device.cryptoki.mode
    if mode == "module":
        yield "PKCS#11 module loads", lambda: _module_loads(state)
        yield "token present", lambda: _token_present(state)
        yield "login", lambda: _login(state)
    elif mode == "socket":
        yield "signing service answers", lambda: _service_answers(state)
    yield "key found and unique", lambda: _key_found(state)
    yield "key origin (device.key_policy)", lambda: _key_origin(state)
    yield "certificate matches the key and is valid now", lambda: _certificate(state)
    yield "bridge rules read", lambda: _rules(state)
    yield "cloud host resolves", lambda: _resolves(state)
    yield "TLS handshake as the device (no MQTT)", lambda: _handshake(state)
    assert state.profile is not None
    yield from local_checks(state.config_dir, state.config, state.profile, skip=NotChecked)
    yield "MQTT connection (the running bridge's)", lambda: _bridge_connection(state)
    if state.profile.round_trip is not None:
        yield f"{state.profile.title} answers", lambda: _answers(state)


def _read_config(state: _State) -> str:
    state.config = load_config(state.config_dir)
    state.profile = cloud_profile(state.cloud, state.config, state.config_dir)
    return f"{config_file(state.config_dir)}, mode {state.config.device.cryptoki.mode}"


def _module_path(state: _State) -> Path:
    from edgeagent.pkcs11.modules import module_for

    assert state.config is not None
    return module_for(_token_uri(state), state.config.device.cryptoki.module_path)


def _module_loads(state: _State) -> str:
    from edgeagent.pkcs11.module import load_module

    return load_module(_module_path(state)).description


def _token_uri(state: _State) -> Pkcs11Uri:
    from edgeagent.pkcs11.uri import Pkcs11Uri

    assert state.profile is not None
    text = state.profile.identity.key_uri
    return Pkcs11Uri.parse(text) if text else Pkcs11Uri()


def _token_present(state: _State) -> str:
    from edgeagent.pkcs11.module import load_module
    from edgeagent.pkcs11.tokens import find_tokens

    tokens = find_tokens(load_module(_module_path(state)), _token_uri(state))
    return tokens[0].description.summary()


def _login(state: _State) -> str:
    # Opening the signer logs in once and selects the key; the next step
    # reports on the selection. A refused PIN stops here and is not retried.
    state.signer, state.warnings = _open_signer_watching_warnings(state)
    return "the token accepted the PIN (or needs none)"


def _service_answers(state: _State) -> str:
    state.signer, state.warnings = _open_signer_watching_warnings(state)
    assert state.config is not None
    return str(state.config.device.cryptoki.socket_path)


def _open_signer_watching_warnings(state: _State) -> tuple[Signer, list[str]]:
    assert state.config is not None and state.profile is not None
    caught: list[str] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                caught.append(record.getMessage())

    handler = _Catch()
    logger = logging.getLogger("edgeagent.pkcs11")
    logger.addHandler(handler)
    try:
        signer = open_signer(state.config, state.profile.identity)
    finally:
        logger.removeHandler(handler)
    return signer, caught


def _key_found(state: _State) -> str:
    if state.signer is None:  # mode off: the key file
        state.signer, state.warnings = _open_signer_watching_warnings(state)
    several = [w for w in state.warnings if "match" in w and "using the first" in w]
    if several:
        raise KeyNotFound(
            "the key URI matches several keys, so which one is used depends on the "
            "token's contents:\n" + several[0],
            "set device.key_uri (or <cloud>.device.key_uri) to the URI of one key",
        )
    return state.signer.location


def _key_origin(state: _State) -> str:
    assert state.config is not None and state.signer is not None
    enforce_key_policy(state.config, state.signer)
    return f"{describe_origin(state.signer)}; policy {state.config.device.key_policy}"


def _certificate(state: _State) -> str:
    assert state.profile is not None and state.signer is not None and state.config is not None
    identity = state.profile.identity
    certificate = read_device_certificate(identity.cert_path, identity.cert_path_key)
    check_matches_certificate(state.signer, certificate.leaf)
    now = datetime.datetime.now(datetime.UTC)
    leaf = certificate.leaf
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise CertificateNotValidNow(
            f"the device certificate {certificate.path} is valid from "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; now is {now:%Y-%m-%d %H:%M} UTC",
            "renew the device certificate (or check this device's clock)",
        )
    state.certificate = certificate
    days = (leaf.not_valid_after_utc - now).days
    detail = f"{certificate.device_id}, valid for {days} more days"
    if leaf.not_valid_after_utc - now < RENEWAL_WARNING:
        detail += (
            f"; warning: under {RENEWAL_WARNING.days} days left: "
            f"agent cert renew {state.cloud} (or enable agent-cert-renew@{state.cloud}.timer)"
        )
    return detail


def _resolves(state: _State) -> str:
    assert state.profile is not None
    host, port = state.profile.host, state.profile.port
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise BrokerUnreachable(
            f"cannot resolve {host!r} ({error.strerror})",
            f"check {state.cloud}.url and the device's DNS settings",
        ) from error
    return ", ".join(sorted({str(a[4][0]) for a in addresses}))


def _rules(state: _State) -> str:
    assert state.profile is not None and state.certificate is not None
    rules = read_rules(state.profile, state.certificate.device_id)
    return f"{state.profile.rules_path}, {len(rules.rules)} rules"


def _handshake(state: _State) -> str:
    assert state.profile is not None and state.signer is not None
    assert state.certificate is not None
    anchors = load_trust_anchors(
        state.profile.root_cert_path, f"{state.profile.name}.root_cert_path"
    )
    tls = TlsClientContext(
        state.signer,
        state.certificate.pem,
        anchors,
        list(state.profile.alpn) or None,
        min_version=state.profile.tls_min_version,
        cloud=state.profile.name,
    )
    device = Device(state.certificate, state.signer, tls)
    result = check_cloud_tls(device, state.profile)
    handshake_ms = tls.last_handshake.seconds * 1000
    verdict = (
        "the cloud accepted the device certificate"
        if result.accepted
        else "no refusal of the device certificate"
    )
    return (
        f"{state.profile.host}:{state.profile.port}, {tls.last_handshake.describe()}, "
        f"handshake {handshake_ms:.0f} ms, {verdict}"
    )


def _bridge_connection(state: _State) -> str:
    """The CONNACK the running bridge got (its health topic); never a CONNECT of our own."""
    assert state.profile is not None and state.config is not None
    profile, config = state.profile, state.config
    service = _running_bridge(state, "checks the MQTT connection with the bridge's own")
    with HealthWatcher(config, profile) as watcher:
        health = watcher.current()
    if health is None:
        raise ServiceError(
            f"the {profile.title} bridge runs but has published no health on "
            f"{profile.health_topic}",
            f"see {service.log_hint}",
        )
    when = datetime.datetime.fromtimestamp(health.time, datetime.UTC)
    if health.up:
        return f"the bridge is connected (since {when:%Y-%m-%d %H:%M:%S} UTC)"
    error = reported_error(health)
    if error is not None:
        raise error
    raise ServiceError(
        f"the {profile.title} bridge runs but is not connected to the cloud "
        f"(since {when:%Y-%m-%d %H:%M:%S} UTC): {health.reason or 'no reason given'}",
        f"see {service.log_hint}",
    )


def _answers(state: _State) -> str:
    """connect's round trip, through the running bridge."""
    assert state.profile is not None and state.config is not None
    profile, config = state.profile, state.config
    # Our own session with the cloud would be the bridge's (same client id)
    # and would take the messages the cloud holds for it.
    _running_bridge(state, "ends with this check")
    seconds = round_trip(config, profile)
    return f"round trip {seconds * 1000:.0f} ms through the running bridge"


def _running_bridge(state: _State, connect_does: str) -> BridgeService:
    """The running bridge of the cloud; NotChecked (with what connect does) when none runs."""
    assert state.profile is not None and state.config is not None
    profile = state.profile
    service = BridgeService.of(profile.name, state.config_dir, state.config)
    if not service.is_running():
        raise NotChecked(
            f"the {profile.title} bridge is not running: `agent connect {profile.name}` "
            f"{connect_does}"
        )
    return service


class NotChecked(Exception):
    """A check that cannot run now; not a failure (``CheckResult.skipped``)."""

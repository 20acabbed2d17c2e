"""`agent cert renew <cloud>` by EST: a new certificate, tried before it is trusted.

    when = not_due(config_dir, "c8y", within=datetime.timedelta(days=30))
    renewed = renew_by_est(config_dir, "c8y", pins=pins, notify=print)

1. The current certificate and key are opened and checked (they must work:
   they authenticate the renewal).
2. With ``new_key``, a key is made on the token beside the current one.
3. A CSR (CN = the device id) signed by the key to certify goes to
   ``simplereenroll``: Cumulocity's (``c8y.http``) with ``Bearer <JWT>``
   fetched through the running bridge, or any RFC 7030 server (``est_url``)
   with TLS client authentication by the current certificate over our TLS
   stack.
4. The answer must hold a certificate for that key. It is tried: TLS
   handshake + CONNACK against the cloud (:mod:`edgeagent.certs.trial`: as
   the device's client id, reading nothing but the CONNACK).
5. Only then are ``cert_path`` (atomically) and, for a new key, the key URI
   switched; a running bridge is reconnected. If that reconnection fails the
   old certificate and key URI are put back and the bridge reconnected with
   them. Any failure before leaves everything as it was (a new key made for
   the attempt is deleted again).
6. The old key, after the new one connected, is deleted unless ``keep_old_key``.

This is above :mod:`edgeagent.hsm` (keys) and :mod:`edgeagent.certs` (EST),
which is why it lives with the clouds' orchestration.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from edgeagent.bridge.service import BridgeService
from edgeagent.certs.build import build_csr
from edgeagent.certs.c8y_token import fetch_c8y_token
from edgeagent.certs.enrol import (
    c8y_est_server,
    enroll_until_registered,
    est_server_from_url,
    install_certificate,
    install_certificate_pem,
    public_der,
)
from edgeagent.certs.est import Auth, BearerAuth, leaf_first
from edgeagent.certs.est_tls import client_cert_connection
from edgeagent.certs.trial import try_certificate
from edgeagent.clouds.connect import reconnect
from edgeagent.clouds.device import open_device
from edgeagent.clouds.registry import cloud_profile
from edgeagent.config import load_config, set_value
from edgeagent.errors import AgentError, InvalidKeyUri, TokenError, UsageError
from edgeagent.hsm.keys import create_renewal_key
from edgeagent.hsm.policy import PinSource, open_admin
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.pkcs11.keyspecs import KeySpec
from edgeagent.pkcs11.uri import Pkcs11Uri
from edgeagent.signing.certificate import read_device_certificate
from edgeagent.signing.open import open_signer
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors

log = logging.getLogger("edgeagent.clouds")
Notify = Callable[[str], None]


@dataclass(frozen=True)
class NotDue:
    not_after: datetime.datetime
    renew_from: datetime.datetime


def not_due(config_dir: Path, cloud: str, within: datetime.timedelta) -> NotDue | None:
    """None when the certificate ends within ``within`` (renew now); else when it will."""
    config = load_config(config_dir)
    identity = config.identity(cloud)
    leaf = read_device_certificate(identity.cert_path, identity.cert_path_key).leaf
    renew_from = leaf.not_valid_after_utc - within
    if datetime.datetime.now(datetime.UTC) >= renew_from:
        return None
    return NotDue(leaf.not_valid_after_utc, renew_from)


@dataclass(frozen=True)
class Renewed:
    path: Path
    subject: str
    not_after: datetime.datetime
    server: str
    auth: str
    """'bearer' (Cumulocity's token) or 'client-certificate'."""
    trial_seconds: float
    new_key_uri: str | None
    key_setting: str
    reconnected: bool
    old_key_deleted: list[str]


class _Steps:
    """Progress for connect/disconnect during the switch: details to the log, steps to notify."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify

    def detail(self, name: str, value: str) -> None:
        log.info("%s: %s", name, value)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self._notify(f"{label}...")
        yield


def renew_by_est(
    config_dir: Path,
    cloud: str,
    *,
    pins: PinSource,
    est_url: str | None = None,
    new_key: bool = False,
    key_spec: KeySpec | None = None,
    key_label: str | None = None,
    keep_old_key: bool = False,
    token_timeout: float = 30.0,
    notify: Notify = lambda _: None,
) -> Renewed:
    """The whole renewal (module docstring); our errors name the step that failed."""
    config = load_config(config_dir)
    profile = cloud_profile(cloud, config, config_dir)
    identity = profile.identity
    if est_url is None and cloud != "c8y":
        raise UsageError(
            f"no EST server is known for {cloud}", "pass --est-url https://host/.well-known/est"
        )
    device = open_device(config, profile)
    new_uri: str | None = None
    try:
        old_location = device.signer.location
        device_id = device.device_id
        if new_key:
            created = create_renewal_key(config_dir, cloud, pins, spec=key_spec, label=key_label)
            new_uri = created.entry.uri
            notify(f"created {created.entry.kind} key {created.entry.label!r} for the renewal")
        signer = (
            open_signer(config, replace(identity, key_uri=new_uri))
            if new_uri is not None
            else device.signer
        )
        try:
            csr = build_csr(signer, device_id)
            auth: Auth
            if est_url is not None:
                server = est_server_from_url(est_url, profile.root_cert_path)
                server = replace(server, connection=client_cert_connection(device.tls))
                auth, auth_kind = None, "client-certificate"
            else:
                server = c8y_est_server(config)
                notify("asking Cumulocity for a token through the bridge (c8y/s/uat)")
                token = fetch_c8y_token(
                    config.mqtt.client.host, config.mqtt.client.port, timeout=token_timeout
                )
                auth, auth_kind = BearerAuth(token), "bearer"
            answer, _ = enroll_until_registered(
                server,
                "simplereenroll",
                csr,
                auth,
                retry_every=5.0,
                max_wait=60.0,
                notify=notify,
            )
            chain = leaf_first(answer.certificates, public_der(signer))
            chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
            notify(f"trying the new certificate with {profile.title} ({profile.host})")
            trial_tls = TlsClientContext(
                signer,
                chain_pem.decode(),
                load_trust_anchors(profile.root_cert_path, f"{profile.name}.root_cert_path"),
                list(profile.alpn) or None,
                min_version=profile.tls_min_version,
                cloud=profile.name,
            )
            endpoint = Endpoint(
                name=profile.name,
                host=profile.host,
                port=profile.port,
                client_id=device_id,
                tls=trial_tls,
                username=profile.username(device_id),
            )
            try:
                trial_seconds = try_certificate(endpoint)
            except AgentError as error:
                raise type(error)(
                    f"the new certificate was not accepted, so nothing was switched: {error.cause}",
                    error.fix,
                ) from error
        finally:
            if signer is not device.signer:
                signer.close()
    except BaseException:
        device.close()
        if new_uri is not None:
            _delete_key(config_dir, pins, new_uri, notify, "the new key made for it")
        raise
    old_pem = device.certificate.path.read_bytes()
    device.close()

    assert identity.cert_path is not None  # open_device read it
    was_running = _service(config_dir, cloud).is_running()
    install_certificate(identity.cert_path, chain)
    try:
        if new_uri is not None:
            set_value(config_dir, identity.key_uri_key, new_uri)
        if was_running:
            _restart_bridge(config_dir, cloud, notify)
    except BaseException:
        notify("the switch failed: putting the old certificate and key back")
        install_certificate_pem(identity.cert_path, old_pem)
        if new_uri is not None and identity.key_uri is not None:
            set_value(config_dir, identity.key_uri_key, identity.key_uri)
        if was_running:
            _restart_bridge(config_dir, cloud, notify)
        raise

    deleted: list[str] = []
    if new_uri is not None and not keep_old_key:
        deleted = _delete_key(config_dir, pins, old_location, notify, "the old key")
    leaf = chain[0]
    return Renewed(
        path=identity.cert_path,
        subject=leaf.subject.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
        server=server.url,
        auth=auth_kind,
        trial_seconds=trial_seconds,
        new_key_uri=new_uri,
        key_setting=identity.key_uri_key,
        reconnected=was_running,
        old_key_deleted=deleted,
    )


def _service(config_dir: Path, cloud: str) -> BridgeService:
    config = load_config(config_dir)
    return BridgeService.of(cloud, config_dir, config)


def _restart_bridge(config_dir: Path, cloud: str, notify: Notify) -> None:
    """Restart the bridge so it reads the files as they are now; it is stopped only
    once connect's checks pass with them (a failed check leaves it running)."""
    reconnect(config_dir, cloud, _Steps(notify))


def _delete_key(
    config_dir: Path, pins: PinSource, location: str, notify: Notify, what: str
) -> list[str]:
    """Delete the key at ``location`` (a PKCS#11 URI); a failure is reported, not raised."""
    try:
        uri = Pkcs11Uri.parse(location)
    except InvalidKeyUri:
        return []  # a key file: not ours to delete
    if not uri.names_key:
        return []
    try:
        with open_admin(load_config(config_dir), pins) as admin:
            deleted = admin.delete_key(uri.token_part(), uri.object, uri.id)
    except (TokenError, AgentError) as error:
        notify(f"warning: {what} was not deleted: {error.cause}")
        return []
    notify(f"deleted {what}: {location}")
    return deleted


def renews_by_est(config_dir: Path, cloud: str, *, est_url: str | None, csr: bool) -> bool:
    """EST unless --csr, or a self-signed certificate without --est-url (today's renewal)."""
    if csr:
        return False
    if est_url:
        return True
    identity = load_config(config_dir).identity(cloud)
    leaf = read_device_certificate(identity.cert_path, identity.cert_path_key).leaf
    return leaf.issuer != leaf.subject

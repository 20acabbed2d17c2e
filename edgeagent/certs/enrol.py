"""`agent cert download`: a certificate from an EST server for the key on the token.

    downloaded = download(config_dir, "c8y", "device-042", password, notify=print)
    downloaded.path                # device.cert_path (or <cloud>.device.cert_path)

The key must exist already (the CLI makes one with :mod:`edgeagent.hsm.device_key`
first: that layer is above this one). The CSR (CN = device id) is signed on
the token, sent to ``simpleenroll`` with HTTP Basic ``device id : one-time
password``, and asked again with back-off while the server says "not
registered yet", until ``max_wait`` has passed. The answer's certificate must
be for our key before it is written, atomically, in place of a certificate
that does not work; a working one is replaced only with ``force``.
"""

from __future__ import annotations

import datetime
import os
import secrets
import string
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgeagent.certs.build import build_csr
from edgeagent.certs.est import Auth, BasicAuth, EstAnswer, EstPending, EstServer, leaf_first
from edgeagent.config import AgentConfig, load_config
from edgeagent.errors import (
    AgentError,
    CertificateExists,
    CertificateKeyMismatch,
    EnrolmentTimedOut,
    FileWriteError,
    MissingConfigValue,
    UsageError,
)
from edgeagent.signing.certificate import read_device_certificate
from edgeagent.signing.key_policy import enforce_key_policy
from edgeagent.signing.match import check_matches_certificate
from edgeagent.signing.open import open_signer
from edgeagent.signing.signer import Signer

Notify = Callable[[str], None]
MAX_RETRY_EVERY = 60.0


@dataclass(frozen=True)
class Downloaded:
    path: Path
    subject: str
    issuer: str
    not_after: datetime.datetime
    key_location: str
    server: str
    attempts: int
    replaced: str | None
    """Why an existing file was replaced (not working, or --force); None if there was none."""


def c8y_est_server(config: AgentConfig, timeout: float = 30.0) -> EstServer:
    """Cumulocity's EST service: c8y.http (default c8y.url's host, port 443)."""
    host, port = config.c8y.http_host_port()
    return EstServer(host, port, config.c8y.root_cert_path, timeout=timeout)


def est_server_from_url(url: str, roots: Path, timeout: float = 30.0) -> EstServer:
    """``https://host[:port][/path]``; the path defaults to /.well-known/est."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(
            f"--est-url {url!r} is not an https:// URL",
            "pass the EST server as https://host[:port][/.well-known/est]",
        )
    path = parts.path.rstrip("/") or "/.well-known/est"
    return EstServer(parts.hostname, parts.port or 443, roots, path=path, timeout=timeout)


def working_certificate_problem(config: AgentConfig, cloud: str, signer: Signer) -> str | None:
    """None when the certificate file exists, is valid now and is the key's; else why not."""
    identity = config.identity(cloud)
    try:
        current = read_device_certificate(identity.cert_path, identity.cert_path_key)
    except AgentError as error:
        return error.cause
    now = datetime.datetime.now(datetime.UTC)
    leaf = current.leaf
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        return f"{current.path} is not valid now (until {leaf.not_valid_after_utc:%Y-%m-%d})"
    try:
        check_matches_certificate(signer, leaf)
    except CertificateKeyMismatch:
        return f"{current.path} is not the certificate of {signer.location}"
    return None


def enroll_until_registered(
    server: EstServer,
    operation: str,
    csr_der: bytes,
    auth: Auth,
    *,
    retry_every: float,
    max_wait: float,
    notify: Notify,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[EstAnswer, int]:
    """Ask until the answer is a certificate; back off (x2, at most 60 s) while it is "not yet"."""
    deadline = clock() + max_wait
    delay = retry_every
    attempts = 0
    while True:
        attempts += 1
        try:
            return server.enroll(operation, csr_der, auth), attempts
        except EstPending as pending:
            wait = pending.retry_after if pending.retry_after is not None else delay
            left = deadline - clock()
            if left <= 0:
                raise EnrolmentTimedOut(
                    f"{server.url}/{operation} still answers HTTP {pending.status} "
                    f"({pending.text}) after {attempts} attempts in {max_wait:.0f} s",
                    "register the device in the cloud with this device id and one-time "
                    "password, then run the command again (or give it more --max-wait)",
                ) from None
            wait = min(wait, left)
            notify(f"not registered yet (HTTP {pending.status}); asking again in {wait:.0f} s")
            sleep(wait)
            delay = min(delay * 2, MAX_RETRY_EVERY)


def install_certificate(path: Path, certificates: list[x509.Certificate]) -> None:
    """Write the chain (leaf first) as PEM beside ``path``, then rename it over: all or nothing."""
    install_certificate_pem(
        path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    )


def install_certificate_pem(path: Path, data: bytes) -> None:
    """``data`` at ``path`` by write-beside, fsync and rename: readers see old or new, whole."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o644)  # a certificate is public; the bridge user reads it
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        raise FileWriteError(
            f"cannot write {path}: {error.strerror}",
            f"make {path.parent} writable for this user, or choose another path",
        ) from error


def public_der(signer: Signer) -> bytes:
    """The signer's public key as DER SubjectPublicKeyInfo: picks our certificate from a chain."""
    return signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def download(
    config_dir: Path,
    cloud: str,
    device_id: str,
    password: str,
    *,
    est_url: str | None = None,
    force: bool = False,
    retry_every: float = 5.0,
    max_wait: float = 600.0,
    notify: Notify = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Downloaded:
    """Enrol with ``simpleenroll`` and install the certificate (module docstring)."""
    config = load_config(config_dir)
    identity = config.identity(cloud)
    if identity.cert_path is None:
        raise MissingConfigValue(
            f"{identity.cert_path_key} is not set",
            f"agent config set {identity.cert_path_key} /etc/agent/device-certs/device.pem",
        )
    if est_url is not None:
        server = est_server_from_url(est_url, config.cloud(cloud).root_cert_path)
    elif cloud == "c8y":
        server = c8y_est_server(config)
    else:
        raise UsageError(
            f"no EST server is known for {cloud}", "pass --est-url https://host/.well-known/est"
        )
    with open_signer(config, identity) as signer:
        enforce_key_policy(config, signer)
        replaced = None
        if identity.cert_path.exists():
            problem = working_certificate_problem(config, cloud, signer)
            if problem is None and not force:
                raise CertificateExists(
                    f"{identity.cert_path} ({identity.cert_path_key}) is a working certificate "
                    f"for {signer.location}; it was not replaced",
                    f"`agent cert renew {cloud}` renews it; --force replaces it anyway",
                )
            replaced = problem or "--force"
        csr = build_csr(signer, device_id)
        answer, attempts = enroll_until_registered(
            server,
            "simpleenroll",
            csr,
            BasicAuth(device_id, password),
            retry_every=retry_every,
            max_wait=max_wait,
            notify=notify,
            sleep=sleep,
        )
        chain = leaf_first(answer.certificates, public_der(signer))
        install_certificate(identity.cert_path, chain)
        location = signer.location
    leaf = chain[0]
    return Downloaded(
        path=identity.cert_path,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
        key_location=location,
        server=server.url,
        attempts=attempts,
        replaced=replaced,
    )


def new_one_time_password() -> str:
    """24 letters and digits (~143 bits), for the person who registers the device."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(24))


# What the person registering the device does in each cloud's console.
_REGISTRATION_STEPS = {
    "c8y": (
        "Cumulocity: Devices > Registration > Register device > General",
        "(certificate authority / one-time password)",
    ),
}


def registration_steps(cloud: str) -> tuple[str, ...]:
    """The console steps that register a device for enrolment (none known: empty)."""
    return _REGISTRATION_STEPS.get(cloud, ())

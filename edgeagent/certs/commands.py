"""`agent cert create|create-csr|show|renew`, as functions the CLI only prints.

- ``create``: a self-signed certificate at ``device.cert_path`` (or
  ``<cloud>.device.cert_path``), for first registration; an existing file
  is never overwritten (renew does that).
- ``create-csr``: a CSR next to it (``device.pem`` -> ``device.csr``), CN =
  ``--device-id`` or the current certificate's CN, for a CA to sign; an
  existing CSR is replaced only with ``force`` (``--force``).
- ``show``: the certificate, where the key is, and whether they match.
- ``renew``: a self-signed certificate is re-issued in place; a CA-issued one
  gets a CSR. ``new_key`` makes a new key first (create-key --new-key).
  For a CA-issued certificate ``device.key_uri`` is left on the old key,
  which still matches the installed certificate, and the command to switch
  is handed back: switching before the CA answers would break connecting.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgeagent.certs.build import build_csr, build_self_signed, pem, signature_scheme
from edgeagent.config import AgentConfig, load_config, set_value
from edgeagent.errors import (
    AgentError,
    CertificateExists,
    CertificateKeyMismatch,
    FileWriteError,
    MissingConfigValue,
    UsageError,
)
from edgeagent.pkcs11.keyspecs import KeySpec
from edgeagent.signing.certificate import read_device_certificate
from edgeagent.signing.key_policy import describe_origin, enforce_key_policy
from edgeagent.signing.match import check_matches_certificate
from edgeagent.signing.open import open_signer
from edgeagent.signing.signer import Signer


def _cert_key(config: AgentConfig, cloud: str) -> str:
    return config.identity(cloud).cert_path_key


def _cert_path(config: AgentConfig, cloud: str) -> Path:
    path = config.identity(cloud).cert_path
    if path is None:
        raise MissingConfigValue(
            "device.cert_path is not set",
            "agent config set device.cert_path /etc/agent/device-certs/device.pem",
        )
    return path


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as error:
        raise FileWriteError(
            f"cannot write {path}: {error.strerror}",
            f"make {path.parent} writable for this user, or choose another path",
        ) from error


@dataclass(frozen=True)
class Written:
    path: Path
    common_name: str
    key_location: str
    signature: str
    """The signatureAlgorithm written (ecdsa-with-SHA256, ...)."""


def _open(config: AgentConfig, cloud: str, key_uri: str | None = None) -> Signer:
    identity = config.identity(cloud)
    if key_uri is not None:
        identity = replace(identity, key_uri=key_uri)
    signer = open_signer(config, identity)
    try:
        enforce_key_policy(config, signer)
    except BaseException:
        signer.close()
        raise
    return signer


def _self_signed(signer: Signer, path: Path, device_id: str, days: int, rsa_pss: bool) -> Written:
    der = build_self_signed(signer, device_id, days=days, rsa_pss=rsa_pss)
    _write(path, pem(der, "CERTIFICATE"))
    scheme = signature_scheme(signer.public_key(), rsa_pss).name
    return Written(path, device_id, signer.location, scheme)


def _csr(signer: Signer, path: Path, device_id: str, rsa_pss: bool) -> Written:
    der = build_csr(signer, device_id, rsa_pss=rsa_pss)
    _write(path, pem(der, "CERTIFICATE REQUEST"))
    scheme = signature_scheme(signer.public_key(), rsa_pss).name
    return Written(path, device_id, signer.location, scheme)


def create_certificate(
    config_dir: Path,
    device_id: str,
    *,
    cloud: str,
    days: int = 365,
    rsa_pss: bool = False,
) -> Written:
    config = load_config(config_dir)
    path = _cert_path(config, cloud)
    if path.exists():
        raise CertificateExists(
            f"{path} exists ({_cert_key(config, cloud)}); it was not overwritten",
            "`agent cert renew` replaces it; or remove it first",
        )
    with _open(config, cloud) as signer:
        return _self_signed(signer, path, device_id, days, rsa_pss)


def default_csr_path(cert_path: Path) -> Path:
    return cert_path.with_suffix(".csr")


def create_csr(
    config_dir: Path,
    device_id: str | None = None,
    *,
    cloud: str,
    output: Path | None = None,
    rsa_pss: bool = False,
    force: bool = False,
) -> Written:
    """A CSR at ``output`` (default: beside the certificate); an existing file only with ``force``.

    A CSR on disk may be the one a CA is signing right now: a new one (a new
    signature, perhaps another CN) would no longer match what comes back.
    """
    config = load_config(config_dir)
    cert_path = _cert_path(config, cloud)
    path = output or default_csr_path(cert_path)
    if path.exists() and not force:
        raise CertificateExists(
            f"{path} exists (a certificate signing request); it was not overwritten",
            "pass --force to replace it, or --output FILE to write another",
        )
    if device_id is None:
        if not cert_path.exists():
            raise UsageError(
                f"no device id: --device-id not given and there is no certificate at {cert_path}",
                "pass --device-id <the device's id> (it becomes the CN)",
            )
        device_id = read_device_certificate(cert_path, _cert_key(config, cloud)).device_id
    with _open(config, cloud) as signer:
        return _csr(signer, path, device_id, rsa_pss)


def current_key_spec(config_dir: Path, cloud: str) -> KeySpec:
    """The key type of the device certificate's key: what a renewal key is made as."""
    config = load_config(config_dir)
    public = read_device_certificate(_cert_path(config, cloud), _cert_key(config, cloud)).leaf
    key = public.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec-p384" if key.curve.name == "secp384r1" else "ec-p256"
    size = getattr(key, "key_size", 2048)
    return "rsa-4096" if size >= 4096 else "rsa-3072" if size >= 3072 else "rsa-2048"


# -- show -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertReport:
    path: Path
    subject: str
    issuer: str
    serial: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    signature: str
    self_signed: bool
    key_location: str | None
    key_matches: bool | None
    """None when the key could not be opened (key_problem says why)."""
    key_problem: str = ""
    key_origin: str = ""
    """CKA_LOCAL / CKA_NEVER_EXTRACTABLE / CKA_ALWAYS_SENSITIVE, summed up (or unknown)."""
    key_policy: str = "any"

    @property
    def valid_now(self) -> bool:
        now = datetime.datetime.now(datetime.UTC)
        return self.not_before <= now <= self.not_after


def _signature_name(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    return getattr(oid, "_name", None) or oid.dotted_string


def show(config_dir: Path, *, cloud: str) -> CertReport:
    config = load_config(config_dir)
    certificate = read_device_certificate(_cert_path(config, cloud), _cert_key(config, cloud))
    leaf = certificate.leaf
    location: str | None = None
    matches: bool | None = None
    problem = ""
    origin = "unknown (key not opened)"
    try:
        signer = open_signer(config, config.identity(cloud))
    except AgentError as error:
        problem = error.cause
    else:
        with signer:
            location = signer.location
            origin = describe_origin(signer)
            try:
                check_matches_certificate(signer, leaf)
                matches = True
            except CertificateKeyMismatch:
                matches = False
    return CertReport(
        path=certificate.path,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        serial=f"{leaf.serial_number:x}",
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        signature=_signature_name(leaf),
        self_signed=leaf.issuer == leaf.subject,
        key_location=location,
        key_matches=matches,
        key_problem=problem,
        key_origin=origin,
        key_policy=config.device.key_policy,
    )


# -- renew ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenewOutcome:
    written: Written
    kind: str
    """'certificate' (self-signed, replaced in place) or 'csr' (for the CA)."""
    new_key_uri: str | None
    config_updated: bool
    suggestion: str | None


def renew(
    config_dir: Path,
    *,
    cloud: str,
    new_key_uri: str | None = None,
    output: Path | None = None,
    days: int = 365,
    rsa_pss: bool = False,
    csr: bool = False,
) -> RenewOutcome:
    """Renew with the current key, or with ``new_key_uri`` (made by create-key).

    ``csr``: a CSR even for a self-signed certificate.
    """
    config = load_config(config_dir)
    cert_path = _cert_path(config, cloud)
    current = read_device_certificate(cert_path, _cert_key(config, cloud))
    names = current.leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    device_id = str(names[0].value) if names else current.device_id
    self_signed = current.leaf.issuer == current.leaf.subject and not csr
    key_setting = _key_uri_key(config, cloud)
    with _open(config, cloud, new_key_uri) as signer:
        if self_signed:
            written = _self_signed(signer, output or cert_path, device_id, days, rsa_pss)
            updated = False
            if new_key_uri is not None and output is None:
                # The new certificate is for the new key: switch both together.
                set_value(config_dir, key_setting, new_key_uri)
                updated = True
            return RenewOutcome(written, "certificate", new_key_uri, updated, None)
        written = _csr(signer, output or default_csr_path(cert_path), device_id, rsa_pss)
    suggestion = None
    if new_key_uri is not None:
        suggestion = f'agent config set {key_setting} "{new_key_uri}"'
    return RenewOutcome(written, "csr", new_key_uri, False, suggestion)


def _key_uri_key(config: AgentConfig, cloud: str) -> str:
    return config.identity(cloud).key_uri_key

"""The device certificate: read it, and take the device id from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from edgeagent.errors import CertificateUnreadable, MissingConfigValue


@dataclass(frozen=True)
class DeviceCertificate:
    path: Path
    pem: str  # the whole file: the device certificate, then any intermediates
    leaf: x509.Certificate

    @property
    def device_id(self) -> str:
        """The certificate's CN: Cumulocity wants it as the MQTT client id."""
        names = self.leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names:
            raise CertificateUnreadable(
                f"the device certificate {self.path} has no common name (CN)",
                "issue the device certificate with CN = the device id",
            )
        return str(names[0].value)


def read_device_certificate(path: Path | None, key: str = "device.cert_path") -> DeviceCertificate:
    if path is None:
        raise MissingConfigValue(
            f"{key} is not set", f"agent config set {key} /etc/agent/device-certs/device.pem"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CertificateUnreadable(
            f"the device certificate {path} does not exist",
            f"set {key} to the device's certificate (PEM)",
        ) from None
    except PermissionError as error:
        raise CertificateUnreadable(
            f"cannot read the device certificate {path}: permission denied",
            f"make {path} readable by the user running the agent",
        ) from error
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise CertificateUnreadable(
            f"{path} holds no PEM certificate", f"set {key} to the device's PEM certificate"
        ) from error
    return DeviceCertificate(path, data.decode("ascii", errors="replace"), certs[0])

"""The device as one cloud sees it: certificate, key, and a TLS context."""

from __future__ import annotations

from dataclasses import dataclass

from edgeagent.clouds.profile import CloudProfile
from edgeagent.config import AgentConfig
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.certificate import DeviceCertificate, read_device_certificate
from edgeagent.signing.key_policy import enforce_key_policy
from edgeagent.signing.match import check_matches_certificate
from edgeagent.signing.open import open_signer
from edgeagent.signing.signer import Signer
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors


@dataclass
class Device:
    certificate: DeviceCertificate
    signer: Signer
    tls: TlsClientContext

    @property
    def device_id(self) -> str:
        return self.certificate.device_id

    def cloud_endpoint(self, profile: CloudProfile) -> Endpoint:
        return Endpoint(
            name=profile.name,
            host=profile.host,
            port=profile.port,
            client_id=self.device_id,
            tls=self.tls,
            username=profile.username(self.device_id),
        )

    def close(self) -> None:
        self.signer.close()


def open_device(config: AgentConfig, profile: CloudProfile) -> Device:
    """Read the certificate, open the key, check they match, load the trusted roots."""
    identity = profile.identity
    certificate = read_device_certificate(identity.cert_path, identity.cert_path_key)
    certificate.device_id  # noqa: B018 - fail early on a certificate without CN
    anchors = load_trust_anchors(profile.root_cert_path, f"{profile.name}.root_cert_path")
    signer = open_signer(config, identity)
    try:
        enforce_key_policy(config, signer)
        check_matches_certificate(signer, certificate.leaf)
        tls = TlsClientContext(
            signer,
            certificate.pem,
            anchors,
            list(profile.alpn) or None,
            min_version=profile.tls_min_version,
            cloud=profile.name,
        )
    except BaseException:
        signer.close()
        raise
    return Device(certificate, signer, tls)

"""Every key type a token may hold, and the server key types clouds use, through a
real TLS 1.3 handshake to the cloud.

(The four common client key types also run the whole `agent connect` round trip
in test_connect_c8y.py; this covers the rest in-process, which is quicker.)
"""

from __future__ import annotations

import pytest

from edgeagent.bridge.probe import probe
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.module_signer import open_module_signer
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors
from tests.support.mosquitto import Mosquitto, MosquittoFactory, TlsListener
from tests.support.pki import TestPki
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsmToken

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "spec", ["ec-p256", "ec-p384", "ec-p521", "rsa-2048", "rsa-3072", "rsa-4096"]
)
def test_handshake_with_each_key_type(
    spec: str, softhsm_token: SoftHsmToken, cloud_broker: Mosquitto, pki: TestPki
) -> None:
    key = softhsm_token.generate_key(spec)  # type: ignore[arg-type]
    cert = pki.ca.issue_client(key.public_key, f"device-{spec}")
    with open_module_signer(SOFTHSM_MODULE, key.uri, softhsm_token.pin) as signer:
        tls = TlsClientContext(signer, cert.read_text(), load_trust_anchors(pki.ca.cert_path))
        result = probe(
            Endpoint("c8y", "localhost", cloud_broker.tls_port, f"device-{spec}", tls=tls)
        )
    assert result.connack_seconds > 0
    assert f"device-{spec}" in cloud_broker.log_text()


@pytest.mark.parametrize("server_key", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"])
def test_handshake_with_each_server_key_type(
    server_key: str,
    softhsm_token: SoftHsmToken,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
) -> None:
    """AWS and Azure present RSA server certificates, Cumulocity ECDSA or RSA."""
    server = pki.ca.issue_server(["localhost"], key_type=server_key)  # type: ignore[arg-type]
    broker = mosquitto_factory(
        plain=False, tls=TlsListener.for_server(server, client_ca=pki.ca.cert_path), name="cloud"
    )
    key = softhsm_token.generate_key("ec-p256")
    cert = pki.ca.issue_client(key.public_key, "device-1")
    with open_module_signer(SOFTHSM_MODULE, key.uri, softhsm_token.pin) as signer:
        tls = TlsClientContext(signer, cert.read_text(), load_trust_anchors(pki.ca.cert_path))
        result = probe(Endpoint("c8y", "localhost", broker.tls_port, "device-1", tls=tls))
    assert result.connack_seconds > 0
    assert "device-1" in broker.log_text()

"""Every key type a token may hold, through a real TLS 1.3 handshake to the cloud.

(The four common ones also run the whole `agent connect` round trip in
test_connect_c8y.py; this covers the rest in-process, which is quicker.)
"""

from __future__ import annotations

import pytest

from edgeagent.bridge.probe import probe
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.module_signer import open_module_signer
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors
from tests.support.mosquitto import Mosquitto
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

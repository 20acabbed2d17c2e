"""The weak-key refusal on chains no real TLS server will serve (a P-224 leaf):
the verification function alone, with certificates from the test PKI."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.verification import Store

from edgeagent import errors
from edgeagent.tls.verify import load_trust_anchors, verify_server_chain
from tests.support.pki import KeyType, TestCa, load_cert


@pytest.mark.parametrize(("key_type", "weak"), [("ec-p224", True), ("ec-p256", False)])
def test_a_curve_under_p256_is_refused(key_type: KeyType, weak: bool, tmp_path: Path) -> None:
    ca = TestCa("Curve Root", tmp_path)
    server = ca.issue_server(["localhost"], key_type=key_type)
    anchors = load_trust_anchors(ca.cert_path)
    chain = [load_cert(server.cert_path)]
    if not weak:
        verify_server_chain(chain, "localhost", Store(anchors), anchors)
        return
    with pytest.raises(errors.ServerKeyTooWeak) as caught:
        verify_server_chain(chain, "localhost", Store(anchors), anchors)
    assert "EC secp224r1 (224 bits)" in caught.value.cause
    assert "CN=localhost" in caught.value.cause

"""A refused server chain reads as a person would say it (issue 12 part 8).

"the cloud's certificate is not signed by a CA in c8y.root_cert_path (<path>)",
never cryptography's `candidates exhausted: chain construction exceeds max
depth`; a missing or empty root CA file is its own error (exit 17), not the
device certificate's (40). The verification function alone, with
certificates from the test PKI; `agent connect` against a real broker is in
tests/integration/test_error_wording.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.verification import Store

from edgeagent import errors
from edgeagent.cli.exit_codes import exit_code_for
from edgeagent.tls.verify import load_trust_anchors, verify_server_chain
from tests.support.pki import TestCa, load_cert

LIBRARY_WORDING = ("candidates exhausted", "chain construction", "max depth", "VerificationError")


@pytest.fixture
def cas(tmp_path: Path) -> tuple[TestCa, TestCa]:
    return TestCa("Cloud Root", tmp_path), TestCa("Some Other Root", tmp_path)


def test_a_cloud_signed_by_another_ca_is_said_in_words(cas: tuple[TestCa, TestCa]) -> None:
    cloud_ca, ours = cas
    server = load_cert(cloud_ca.issue_server(["localhost"]).cert_path)
    anchors = load_trust_anchors(ours.cert_path, "c8y.root_cert_path")
    with pytest.raises(errors.ServerCertificateUntrusted) as caught:
        verify_server_chain([server], "localhost", Store(anchors), anchors, cloud="c8y")
    cause, fix = caught.value.cause, caught.value.fix
    assert cause.startswith(
        f"the cloud's certificate is not signed by a CA in c8y.root_cert_path ({ours.cert_path})"
    )
    assert "it was issued by CN=Cloud Root" in cause
    assert "set c8y.root_cert_path to the CA that issued" in fix
    for words in LIBRARY_WORDING:
        assert words not in str(caught.value), words
    assert exit_code_for(caught.value) == 50


def test_each_cloud_is_named_by_its_own_key(cas: tuple[TestCa, TestCa]) -> None:
    cloud_ca, ours = cas
    server = load_cert(cloud_ca.issue_server(["localhost"]).cert_path)
    # Anchors loaded without saying whose: the TLS context's cloud names the key.
    anchors = load_trust_anchors(ours.cert_path)
    with pytest.raises(errors.ServerCertificateUntrusted) as caught:
        verify_server_chain([server], "localhost", Store(anchors), anchors, cloud="az")
    assert "not signed by a CA in az.root_cert_path" in caught.value.cause
    assert "set az.root_cert_path" in caught.value.fix
    trusted = load_trust_anchors(cloud_ca.cert_path, "aws.root_cert_path")
    with pytest.raises(errors.ServerHostnameMismatch) as mismatch:
        verify_server_chain([server], "other.example", Store(trusted), trusted, cloud="aws")
    assert "check aws.url" in mismatch.value.fix


@pytest.mark.parametrize("what", ["missing file", "missing directory", "empty directory", "no PEM"])
def test_a_root_ca_file_that_is_not_there_is_its_own_error(tmp_path: Path, what: str) -> None:
    path = {
        "missing file": tmp_path / "nowhere" / "ca.pem",
        "missing directory": tmp_path / "nowhere",
        "empty directory": tmp_path,
        "no PEM": tmp_path / "ca.txt",
    }[what]
    (tmp_path / "ca.txt").write_text("not a certificate\n")
    if what == "empty directory":
        (tmp_path / "ca.txt").unlink()
    with pytest.raises(errors.RootCertificatesUnreadable) as caught:
        load_trust_anchors(path, "c8y.root_cert_path")
    assert not isinstance(caught.value, errors.CertificateError)
    assert exit_code_for(caught.value) == 17
    assert str(path) in caught.value.cause and "c8y.root_cert_path" in caught.value.cause
    assert "set c8y.root_cert_path" in caught.value.fix

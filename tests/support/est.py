"""The stand-in EST server as a fixture: HTTPS on loopback, certificates from ``pki.ca``.

    def test_download(est: EstStandin, gateway: Gateway) -> None:
        gateway.set("c8y.http", est.address)
        est.register("device-001", "secret")

Its server certificate is for 127.0.0.1 (and localhost) from ``pki.ca``, the
CA the gateway trusts as c8y.root_cert_path; what it issues is signed by the
same CA, which the stand-in cloud broker trusts for client certificates.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integration.standin.est import EstStandin
from tests.support.pki import TestPki


@pytest.fixture
def est(pki: TestPki) -> Iterator[EstStandin]:
    """A running stand-in EST server; nobody registered yet."""
    server = pki.ca.issue_server(["localhost"], ["127.0.0.1"])
    with EstStandin(
        pki.ca.cert_path,
        pki.ca.key_path,
        server.cert_path,
        server.key_path,
        client_ca=pki.ca.cert_path,
    ) as standin:
        yield standin

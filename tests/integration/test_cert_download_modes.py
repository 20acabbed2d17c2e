"""`agent cert download` on the other kinds of token: the software TPM, and socket mode.

The TPM makes the key inside it (tpm2-pkcs11) when the key URI finds none;
in socket mode the signing service makes it, and the agent never loads the
module or sees the PIN.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from integration.standin.est import EstStandin
from tests.support.agent_cli import run_agent
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.signing_service import P11ServerFactory
from tests.support.softhsm import SoftHsmToken
from tests.support.tpm import SoftwareTpm

pytestmark = pytest.mark.integration

DEVICE = "device-001"


def _download(gw: Gateway, est: EstStandin, password: str) -> Path:
    gw.set("c8y.http", est.address)
    cert_path = gw.root / "certs" / "device.pem"
    gw.set("device.cert_path", str(cert_path))
    est.register(DEVICE, password)
    done = run_agent(
        *("cert", "download", "c8y", "--device-id", DEVICE),
        config_dir=gw.config_dir,
        env={"EDGEAGENT_ONE_TIME_PASSWORD": password},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "no device key yet: created" in done.stderr
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()) == est.issued[0]
    return cert_path


def test_download_with_a_key_made_in_the_software_tpm(
    gateway_factory: GatewayFactory, software_tpm: SoftwareTpm, est: EstStandin
) -> None:
    gw = gateway_factory("module", token=software_tpm)
    gw.set("device.key_uri", f"{software_tpm.token_uri};object=enrolled-in-tpm")
    _download(gw, est, "tpm-otp-1")
    listed = gw.agent("hsm", "list-keys", "--token-uri", software_tpm.token_uri).stdout
    assert "enrolled-in-tpm" in listed  # made by download, inside the TPM
    connected = gw.agent("connect", "c8y", timeout=300)
    assert connected.returncode == 0, connected.stdout + connected.stderr


def test_download_in_socket_mode_has_the_service_make_the_key(
    gateway_factory: GatewayFactory,
    softhsm_token: SoftHsmToken,
    p11_server_factory: P11ServerFactory,
    est: EstStandin,
) -> None:
    # The service needs a default key to start; the device's own is made by download.
    served = softhsm_token.generate_key("ec-p256", label="service-default")
    server = p11_server_factory(softhsm_token, served)
    server.start()
    gw = gateway_factory("socket", socket_path=server.socket_path)
    gw.set("device.key_uri", f"{softhsm_token.uri};object=enrolled-by-socket")
    _download(gw, est, "socket-otp-1")
    listed = gw.agent("hsm", "list-keys", "--token-uri", softhsm_token.uri).stdout
    assert "enrolled-by-socket" in listed  # made by the service, at download's request
    connected = gw.agent("connect", "c8y")
    assert connected.returncode == 0, connected.stdout + connected.stderr

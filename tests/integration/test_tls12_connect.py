"""`agent connect c8y` to a TLS-1.2-only stand-in cloud, the key on the token.

The stand-in is mosquitto with its OpenSSL capped at TLS 1.2 through
OPENSSL_CONF (`TlsListener.tls12_only`; mosquitto's own `tls_version tlsv1.2`
still negotiates 1.3): the first test shows `openssl s_client -tls1_3` is
refused by it, so "works over 1.2" below means 1.2. Module mode (SoftHSM2
and the software TPM) and socket mode (`agent p11-server`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.bridge.plan import BridgePlan
from edgeagent.clouds.connect import bridge_plan
from tests.support.gateway import AGENT, Gateway, exit_code, new_gateway
from tests.support.mosquitto import Mosquitto, MosquittoFactory, TlsListener
from tests.support.pki import ServerCredentials, TestPki
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsmKey, SoftHsmToken
from tests.support.tpm import TPM2_PKCS11_MODULE, SoftwareTpm

pytestmark = pytest.mark.integration


# Servers that accept client signatures of one RSA padding only (and ECDSA).
PKCS1_ONLY = "rsa_pkcs1_sha256:rsa_pkcs1_sha384:ecdsa_secp256r1_sha256"
PSS_ONLY = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:ecdsa_secp256r1_sha256"


def tls12_cloud(
    factory: MosquittoFactory,
    server: ServerCredentials,
    pki: TestPki,
    client_signature_algorithms: str | None = None,
) -> Mosquitto:
    listener = TlsListener.tls12_only(
        server, client_ca=pki.ca.cert_path, client_signature_algorithms=client_signature_algorithms
    )
    return factory(plain=False, tls=listener, name="cloud12")


def s_client(
    broker: Mosquitto, pki: TestPki, version_flag: str
) -> subprocess.CompletedProcess[str]:
    client = pki.client("s-client")
    return subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{broker.host}:{broker.tls_port}",
            "-servername",
            "localhost",
            version_flag,
            "-CAfile",
            str(pki.ca.cert_path),
            "-cert",
            str(client.cert_path),
            "-key",
            str(client.key_path),
            "-verify_return_error",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def connect_and_round_trip(gw: Gateway, version: str = "TLS 1.2") -> str:
    """`agent connect c8y`, then one message each way through the bridge; returns stdout."""
    with gw.cloud_app() as cloud, gw.local_client() as local:
        cloud.subscribe("s/us", qos=1)
        local.subscribe("c8y/s/ds", qos=1)
        done = gw.agent("connect", "c8y")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Connecting to Cumulocity over {version}... ✓" in done.stdout, done.stdout
        assert "✗" not in done.stdout

        local.publish("c8y/s/us", b"200,c8y_Temperature,T,25", qos=1)
        [up] = cloud.wait_for(1, "s/us", timeout=30)
        assert up.payload == b"200,c8y_Temperature,T,25"
        cloud.publish("s/ds", b"510,device-001", qos=1)
        [down] = local.wait_for(1, "c8y/s/ds", timeout=30)
        assert down.payload == b"510,device-001"
    return done.stdout


@pytest.fixture
def gateways(tmp_path: Path, local_broker: Mosquitto, pki: TestPki) -> Iterator[list[Gateway]]:
    """Gateways made by a test (`new(cloud)`), disconnected afterwards."""
    made: list[Gateway] = []
    yield made
    for gw in made:
        gw.agent("disconnect", "c8y")


def module_gateway(
    tmp_path: Path, local: Mosquitto, cloud: Mosquitto, pki: TestPki, module: Path, pin: str
) -> Gateway:
    gw = new_gateway(tmp_path, local, cloud, pki)
    gw.use_module(module, pin)
    return gw


def use_key(gw: Gateway, key: SoftHsmKey) -> None:
    gw.set("device.key_uri", key.uri)
    gw.set("device.cert_path", str(gw.pki.ca.issue_client(key.public_key, "device-001")))


# -- the stand-in ---------------------------------------------------------------------


def test_the_stand_in_cloud_speaks_tls12_and_refuses_tls13(
    mosquitto_factory: MosquittoFactory, pki: TestPki
) -> None:
    broker = tls12_cloud(mosquitto_factory, pki.localhost_server, pki)
    refused = s_client(broker, pki, "-tls1_3")
    assert refused.returncode != 0, refused.stdout
    assert "Protocol  : TLSv1.3" not in refused.stdout
    spoken = s_client(broker, pki, "-tls1_2")
    assert spoken.returncode == 0, spoken.stdout + spoken.stderr
    assert "Protocol  : TLSv1.2" in spoken.stdout


# -- module mode: SoftHSM2 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "server_key", "client_sigalgs"),
    [
        ("ec-p256", "ec-p256", None),
        ("ec-p384", "ec-p384", None),
        ("rsa-2048", "rsa-2048", PKCS1_ONLY),
        ("rsa-2048", "rsa-2048", PSS_ONLY),
    ],
    ids=["ec-p256", "ec-p384", "rsa-2048-pkcs1-server", "rsa-2048-pss-server"],
)
def test_connect_over_tls12_with_the_key_on_softhsm(
    spec: str,
    server_key: str,
    client_sigalgs: str | None,
    tmp_path: Path,
    local_broker: Mosquitto,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
    softhsm_token: SoftHsmToken,
    gateways: list[Gateway],
) -> None:
    server = pki.ca.issue_server(["localhost"], key_type=server_key)  # type: ignore[arg-type]
    cloud = tls12_cloud(mosquitto_factory, server, pki, client_sigalgs)
    gw = module_gateway(tmp_path, local_broker, cloud, pki, SOFTHSM_MODULE, softhsm_token.pin)
    gateways.append(gw)
    use_key(gw, softhsm_token.generate_key(spec, label="device-key"))  # type: ignore[arg-type]
    connect_and_round_trip(gw)
    assert "device-001" in cloud.log_text()


def test_min_version_13_refuses_the_tls12_cloud_naming_the_key(
    tmp_path: Path,
    local_broker: Mosquitto,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
    softhsm_token: SoftHsmToken,
) -> None:
    cloud = tls12_cloud(mosquitto_factory, pki.localhost_server, pki)
    gw = module_gateway(tmp_path, local_broker, cloud, pki, SOFTHSM_MODULE, softhsm_token.pin)
    use_key(gw, softhsm_token.generate_key("ec-p256", label="device-key"))
    gw.set("c8y.tls.min_version", "1.3")
    done = gw.agent("connect", "c8y")
    assert done.returncode == exit_code(errors.TlsVersionRefused), done.stdout + done.stderr
    assert "Connecting to Cumulocity... ✗" in done.stdout
    assert "the server wants TLS 1.2; the minimum is TLS 1.3" in done.stderr
    assert "c8y.tls.min_version 1.2" in done.stderr
    assert "device-001" not in cloud.log_text()  # the handshake stopped before our Certificate
    # The long-running bridge gets the same minimum through its plan.
    plan = BridgePlan.from_json(bridge_plan(gw.config_dir, "c8y").to_json())
    assert plan.tls_min_version == "1.3"

    gw.set("c8y.tls.min_version", "1.2")  # the control: the same cloud, allowed
    try:
        done = gw.agent("connect", "c8y")
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        gw.disconnect_all()  # a bridge left running outlives the test's brokers


def test_a_tls13_cloud_still_negotiates_tls13(
    tmp_path: Path,
    local_broker: Mosquitto,
    cloud_broker: Mosquitto,
    pki: TestPki,
    softhsm_token: SoftHsmToken,
    gateways: list[Gateway],
) -> None:
    gw = module_gateway(
        tmp_path, local_broker, cloud_broker, pki, SOFTHSM_MODULE, softhsm_token.pin
    )
    gateways.append(gw)
    use_key(gw, softhsm_token.generate_key("ec-p256", label="device-key"))
    connect_and_round_trip(gw, version="TLS 1.3")


def test_doctor_against_the_tls12_cloud_names_version_and_suite(
    tmp_path: Path,
    local_broker: Mosquitto,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
    softhsm_token: SoftHsmToken,
) -> None:
    cloud = tls12_cloud(mosquitto_factory, pki.localhost_server, pki)
    gw = module_gateway(tmp_path, local_broker, cloud, pki, SOFTHSM_MODULE, softhsm_token.pin)
    use_key(gw, softhsm_token.generate_key("ec-p256", label="device-key"))
    done = gw.agent("doctor", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ TLS handshake as the device (no MQTT)" in done.stdout
    assert "TLS 1.2, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 over x25519" in done.stdout

    gw.set("c8y.tls.min_version", "1.3")
    done = gw.agent("doctor", "c8y")
    assert done.returncode == exit_code(errors.TlsVersionRefused), done.stdout + done.stderr
    assert "✗ TLS handshake as the device (no MQTT)" in done.stdout


# -- module mode: the software TPM -------------------------------------------------------


def test_connect_over_tls12_with_the_key_in_the_tpm(
    tmp_path: Path,
    local_broker: Mosquitto,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
    software_tpm: SoftwareTpm,
    gateways: list[Gateway],
) -> None:
    cloud = tls12_cloud(mosquitto_factory, pki.localhost_server, pki)
    gw = module_gateway(tmp_path, local_broker, cloud, pki, TPM2_PKCS11_MODULE, software_tpm.pin)
    gateways.append(gw)
    key = software_tpm.generate_key("ec-p256", label="device-tls12")
    gw.set("device.key_uri", key.uri)
    gw.set("device.cert_path", str(pki.ca.issue_client(key.public_key, "device-001")))
    connect_and_round_trip(gw)


# -- socket mode: agent p11-server signs ----------------------------------------------


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short path (AF_UNIX allows ~107 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="p11t12-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def start_signing_service(
    config_dir: Path, socket_path: Path, token: SoftHsmToken, key: SoftHsmKey
) -> subprocess.Popen[bytes]:
    from edgeagent.config import set_value

    for name, value in (
        ("device.cryptoki.module_path", str(SOFTHSM_MODULE)),
        ("device.cryptoki.pin", token.pin),
        ("device.cryptoki.uri", key.uri),
        ("device.cryptoki.socket_path", str(socket_path)),
    ):
        set_value(config_dir, name, value)
    log = (config_dir / "p11-server.log").open("wb")
    service = subprocess.Popen(
        [str(AGENT), "-v", "p11-server"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, AGENT_CONFIG_DIR=str(config_dir)),
    )
    deadline = time.monotonic() + 20
    while True:
        assert service.poll() is None, (config_dir / "p11-server.log").read_text()
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(socket_path))
            return service
        except OSError:
            assert time.monotonic() < deadline, (config_dir / "p11-server.log").read_text()
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("spec", "client_sigalgs"),
    [("ec-p256", None), ("rsa-2048", PKCS1_ONLY)],
    ids=["ec-p256", "rsa-2048-pkcs1-server"],
)
def test_connect_over_tls12_signing_through_the_service(
    spec: str,
    client_sigalgs: str | None,
    tmp_path: Path,
    socket_dir: Path,
    local_broker: Mosquitto,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
    softhsm_token: SoftHsmToken,
    gateways: list[Gateway],
) -> None:
    server = pki.ca.issue_server(["localhost"], key_type="rsa-2048")
    cloud = tls12_cloud(mosquitto_factory, server, pki, client_sigalgs)
    key = softhsm_token.generate_key(spec, label="device-key")  # type: ignore[arg-type]
    socket_path = socket_dir / "p11.sock"
    service = start_signing_service(tmp_path / "etc-p11", socket_path, softhsm_token, key)
    try:
        gw = new_gateway(tmp_path, local_broker, cloud, pki)
        gateways.append(gw)
        gw.set("device.cryptoki.mode", "socket")
        gw.set("device.cryptoki.socket_path", str(socket_path))
        gw.set("device.cert_path", str(pki.ca.issue_client(key.public_key, "device-001")))
        out = connect_and_round_trip(gw)
        assert f"via the signing service at {socket_path}" in out
        gw.agent("disconnect", "c8y")
    finally:
        service.terminate()
        service.wait(10)

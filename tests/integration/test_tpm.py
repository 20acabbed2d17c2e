"""The device key inside a (software) TPM 2.0, reached through tpm2-pkcs11.

swtpm + tpm2-abrmd + tpm2-pkcs11 (``tests/support/tpm.py``): keys are
generated inside the TPM and never leave it. The same ``agent connect c8y``
as with SoftHSM2 (``test_connect_c8y.py``) must work, a wrong PIN must cost
the TPM exactly one failed authorisation, and the library's own chatter must
not reach the user as errors.
"""

from __future__ import annotations

import hashlib
import re
import statistics
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from edgeagent import errors
from edgeagent.bridge.probe import probe
from edgeagent.cli.exit_codes import EXIT_CODES
from edgeagent.clouds.device import open_device
from edgeagent.clouds.registry import cloud_profile
from edgeagent.config import load_config
from edgeagent.signing.module_signer import open_module_signer
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.softhsm import SoftHsmToken
from tests.support.tpm import LIBRARY_LOG, TPM2_PKCS11_MODULE, SoftwareTpm

pytestmark = pytest.mark.integration


@pytest.fixture
def tpm_gateway(gateway_factory: GatewayFactory, software_tpm: SoftwareTpm) -> Gateway:
    return gateway_factory("module", token=software_tpm, name="tpm")


def p11tool_uri(tpm: SoftwareTpm, label: str) -> str:
    """The key's URI exactly as ``p11tool --list-privkeys`` prints it (what users copy)."""
    done = subprocess.run(
        [
            "p11tool",
            f"--provider={tpm.module}",
            "--login",
            f"--set-pin={tpm.pin}",
            "--list-privkeys",
            tpm.token_uri,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    urls: list[str] = re.findall(r"URL: (pkcs11:\S+)", done.stdout)
    [url] = [u for u in urls if f";object={label};" in u + ";"]
    return url


# -- signing inside the TPM


@pytest.mark.parametrize("spec", ["ec-p256", "rsa-2048"])
def test_sign_and_verify_with_a_key_inside_the_tpm(software_tpm: SoftwareTpm, spec: str) -> None:
    key = software_tpm.generate_key(spec, label=f"sign-{spec}")  # type: ignore[arg-type]
    digest = hashlib.sha256(b"edge telemetry").digest()
    prehashed = utils.Prehashed(hashes.SHA256())

    with open_module_signer(TPM2_PKCS11_MODULE, key.uri, software_tpm.pin) as signer:
        assert signer.public_key().public_numbers() == key.public_key.public_numbers()
        if spec == "ec-p256":
            assert isinstance(key.public_key, ec.EllipticCurvePublicKey)
            assert key.public_key.curve.name == "secp256r1"
            signature = signer.sign_digest(digest, "sha256", "ecdsa")
            key.public_key.verify(signature, digest, ec.ECDSA(prehashed))
        else:
            assert isinstance(key.public_key, rsa.RSAPublicKey)
            assert key.public_key.key_size == 2048
            pss = signer.sign_digest(digest, "sha256", "pss")
            key.public_key.verify(
                pss, digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32), prehashed
            )
            # PSS is randomised: two signatures of one digest differ.
            assert signer.sign_digest(digest, "sha256", "pss") != pss
            v15 = signer.sign_digest(digest, "sha256", "pkcs1v15")
            key.public_key.verify(v15, digest, padding.PKCS1v15(), prehashed)


# -- agent connect c8y with the key in the TPM


@pytest.mark.parametrize("spec", ["ec-p256", "rsa-2048"])
def test_connect_bridges_both_ways_with_the_key_in_the_tpm(
    tpm_gateway: Gateway, software_tpm: SoftwareTpm, spec: str
) -> None:
    key = software_tpm.generate_key(spec, label=f"device-{spec}")  # type: ignore[arg-type]
    # The URI a user copies from p11tool, NUL-padded model and all.
    uri = p11tool_uri(software_tpm, key.label)
    assert "%00" in uri, uri  # tpm2-pkcs11 pads the model with NULs: the case under test
    tpm_gateway.use_key(key, uri=uri)

    done = tpm_gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "key access: module (" in done.stdout
    assert f"object={key.label}" in done.stdout and "token=edge-tpm" in done.stdout
    assert "✗" not in done.stdout
    # tpm2-tss / tpm2-pkcs11 logging (e.g. the harmless "Listing FAPI
    # token objects failed") must not reach the user looking like errors.
    assert not LIBRARY_LOG.search(done.stdout + done.stderr), done.stdout + done.stderr

    up, down = tpm_gateway.exchange(b"200,c8y_Temperature,T,25", b"510,device-001", timeout=30)
    assert up.payload == b"200,c8y_Temperature,T,25"
    assert down.payload == b"510,device-001"

    assert "device-001" in tpm_gateway.cloud.log_text()


def test_wrong_pin_fails_once_and_is_not_retried(
    tpm_gateway: Gateway, software_tpm: SoftwareTpm
) -> None:
    key = software_tpm.generate_key("ec-p256", label="wrong-pin")
    tpm_gateway.use_key(key)
    tpm_gateway.set("device.cryptoki.pin", "000000")
    before = software_tpm.lockout_counter()

    done = tpm_gateway.agent("connect", "c8y")

    after = software_tpm.lockout_counter()
    assert done.returncode == dict(EXIT_CODES)[errors.PinIncorrect], done.stdout + done.stderr
    assert "PIN incorrect" in done.stderr and software_tpm.token_label in done.stderr
    assert "device.cryptoki.pin" in done.stderr
    assert "000000" not in done.stdout + done.stderr
    # The wrong PIN reached the TPM exactly once: one failed authorisation
    # counted by its dictionary-attack protection, no automatic retry.
    assert after - before == 1, (before, after)
    assert not (tpm_gateway.run_dir / "bridge-c8y.pid").exists()

    # With the right PIN the same key connects: nothing was locked.
    tpm_gateway.set("device.cryptoki.pin", software_tpm.pin)
    done = tpm_gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr


# -- the handshake with a TPM-held key (a figure for the notes, not a timed test)


def _connack_seconds(gw: Gateway, rounds: int) -> tuple[list[float], list[float]]:
    config = load_config(gw.config_dir)
    profile = cloud_profile("c8y", config, gw.config_dir)
    device = open_device(config, profile)
    handshakes, connacks = [], []
    try:
        for _ in range(rounds):
            result = probe(device.cloud_endpoint(profile))
            connacks.append(result.connack_seconds)
            handshakes.append(device.tls.last_handshake.seconds)
    finally:
        device.close()
    return handshakes, connacks


def test_handshake_time_tpm_versus_softhsm(
    gateway_factory: GatewayFactory,
    tpm_gateway: Gateway,
    software_tpm: SoftwareTpm,
    softhsm_token: SoftHsmToken,
    capsys: pytest.CaptureFixture[str],
) -> None:
    soft_gw = gateway_factory("module", token=softhsm_token, name="softhsm")
    rounds = 5
    figures: dict[str, tuple[list[float], list[float]]] = {}
    for spec in ("ec-p256", "rsa-2048"):
        tpm_key = software_tpm.generate_key(spec, label=f"bench-{spec}")
        tpm_gateway.use_key(tpm_key, cn=f"device-tpm-{spec}")
        figures[f"{spec} software TPM"] = _connack_seconds(tpm_gateway, rounds)

        soft_key = softhsm_token.generate_key(spec, label=f"bench-{spec}")
        soft_gw.use_key(soft_key, cn=f"device-soft-{spec}")
        figures[f"{spec} SoftHSM2"] = _connack_seconds(soft_gw, rounds)

    with capsys.disabled():
        print(f"\nTLS 1.3 client-certificate handshake, then CONNACK (median of {rounds}):")
        for name, (handshakes, connacks) in figures.items():
            print(
                f"  {name:22} handshake {statistics.median(handshakes) * 1000:6.1f} ms"
                f"   CONNACK {statistics.median(connacks) * 1000:6.1f} ms"
                f"   (slowest CONNACK {max(connacks) * 1000:.1f} ms)"
            )
    for handshakes, connacks in figures.values():
        assert len(connacks) == rounds and all(h > 0 for h in handshakes)

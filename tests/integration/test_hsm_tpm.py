"""`agent hsm` + `agent cert` with the key inside a (software) TPM 2.0.

The token comes from ``tpm2_ptool addtoken`` (the fixture): tpm2-pkcs11 makes
tokens with its own tool. From there on, `agent` alone: create-key inside
the TPM, create-csr signed by it, a CA signs, connect, messages both ways.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.gateway import Gateway, GatewayFactory
from tests.support.tpm import LIBRARY_LOG, TPM2_PKCS11_MODULE, SoftwareTpm

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(gateway_factory: GatewayFactory, software_tpm: SoftwareTpm) -> Gateway:
    gw = gateway_factory("module", token=software_tpm)
    gw.set("device.cert_path", str(gw.root / "certs" / "device.pem"))
    return gw


def test_tpm_token_to_connected_device(gateway: Gateway, software_tpm: SoftwareTpm) -> None:
    listed = gateway.agent("hsm", "list-tokens")
    assert listed.returncode == 0, listed.stderr
    assert f"token '{software_tpm.token_label}'" in listed.stdout

    created = gateway.agent(
        "hsm", "create-key", "--token-uri", software_tpm.token_uri, "--label", "tpm-device",
        "--public-key", str(gateway.config_dir / "tpm-device.pub"),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    uri = created.stdout.strip()
    assert "object=tpm-device" in uri and "set device.key_uri" in created.stderr
    assert not LIBRARY_LOG.search(created.stderr), created.stderr
    keys = gateway.agent("hsm", "list-keys", "--label", "tpm-device")
    assert "EC secp256r1" in keys.stdout and uri in keys.stdout

    csr = gateway.agent("cert", "create-csr", "--device-id", "tpm-042")
    assert csr.returncode == 0, csr.stderr
    gateway.pki.ca.sign_csr(
        Path(csr.stdout.strip()).read_bytes(),
        path=gateway.config_dir.parent / "certs" / "device.pem",
    )

    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"key: {uri}" in done.stdout
    up, down = gateway.exchange(b"200,c8y_Temperature,T,21", b"510,tpm-042", timeout=30)
    assert up.payload == b"200,c8y_Temperature,T,21"
    assert down.payload == b"510,tpm-042"


def test_tpm_keys_are_never_extractable(gateway: Gateway, software_tpm: SoftwareTpm) -> None:
    import os
    import subprocess

    done = gateway.agent(
        "hsm", "create-key", "--token-uri", software_tpm.token_uri, "--label", "tpm-attrs",
        "--type", "rsa-2048",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listing = subprocess.run(
        ["pkcs11-tool", "--module", str(TPM2_PKCS11_MODULE), "--login", "--pin",
         software_tpm.pin, "--list-objects", "--type", "privkey", "--label", "tpm-attrs"],
        capture_output=True, text=True, env=dict(os.environ), timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "sensitive" in listing and "never extractable" in listing


def test_init_on_a_tpm_says_how_tokens_are_made_there(
    gateway: Gateway, software_tpm: SoftwareTpm, tmp_path: Path
) -> None:
    so = tmp_path / "so"
    so.write_text(software_tpm.so_pin)
    done = gateway.agent("hsm", "init", "--label", "another", "--so-pin-file", str(so))
    if done.returncode != 0:
        assert "tpm2_ptool addtoken" in done.stderr, done.stderr
    else:  # a tpm2-pkcs11 that implements C_InitToken for its empty slot
        assert "token=another" in done.stdout

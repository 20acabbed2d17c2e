"""Where the key came from (CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE), and
device.key_policy = hardware refusing a key that was imported or can leave the token.

Real parts: SoftHSM2, a key imported with `pkcs11-tool --write-object` (as a
user carrying a key file onto a token does), a key made by `agent hsm
create-key`, the stand-in cloud, the signing service for socket mode.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgeagent import errors
from tests.support.agent_cli import exit_code
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.signing_service import P11ServerFactory
from tests.support.softhsm import SoftHsmToken
from tests.support.tokens import TokenKey

pytestmark = pytest.mark.integration

HARDWARE = "generated on the token, can never leave it"
IMPORTED = "imported or extractable (CKA_LOCAL=false"


def _import_key(token: SoftHsmToken, directory: Path) -> ec.EllipticCurvePublicKey:
    """An EC key made on the host, written onto the token with pkcs11-tool (private + public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = directory / "imported.der"
    public = directory / "imported.pub.der"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for path, kind in ((private, "privkey"), (public, "pubkey")):
        subprocess.run(
            [
                "pkcs11-tool",
                *("--module", str(token.module), "--token-label", token.label),
                *("--login", "--pin", token.pin),
                *("--write-object", str(path), "--type", kind),
                *("--label", "imported", "--id", "0a01"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return key.public_key()


@pytest.fixture
def imported(gateway: Gateway, softhsm_token: SoftHsmToken, tmp_path: Path) -> Gateway:
    """The gateway's device key is one imported with pkcs11-tool, with a certificate for it."""
    public = _import_key(softhsm_token, tmp_path)
    gateway.set("device.key_uri", f"{softhsm_token.uri};object=imported")
    gateway.set("device.cert_path", str(gateway.pki.ca.issue_client(public, "device-001")))
    return gateway


def test_an_imported_key_is_shown_as_such_and_works_under_any(imported: Gateway) -> None:
    shown = imported.agent("cert", "show", "c8y")
    assert shown.returncode == 0, shown.stderr
    assert f"key origin:  {IMPORTED}" in shown.stdout
    assert "CKA_NEVER_EXTRACTABLE=false" in shown.stdout
    connected = imported.agent("connect", "c8y")
    assert connected.returncode == 0, connected.stdout + connected.stderr


def test_hardware_policy_refuses_an_imported_key_everywhere(imported: Gateway) -> None:
    imported.set("device.key_policy", "hardware")
    refused = exit_code(errors.KeyPolicyRefused)

    connect = imported.agent("connect", "c8y")
    assert connect.returncode == refused, connect.stdout + connect.stderr
    assert "device.key_policy is 'hardware'" in connect.stderr
    assert "imported or extractable" in connect.stderr

    doctor = imported.agent("doctor", "c8y")
    assert doctor.returncode == refused
    assert "✗ key origin (device.key_policy)" in doctor.stdout

    csr = imported.agent("cert", "create-csr", "--device-id", "device-001")
    assert csr.returncode == refused, csr.stderr


def test_hardware_policy_accepts_a_key_made_by_create_key(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.set("device.key_uri", softhsm_token.uri)
    made = gateway.agent("hsm", "create-key", "--token-uri", softhsm_token.uri)
    assert made.returncode == 0, made.stderr
    gateway.set("device.key_policy", "hardware")
    csr = gateway.agent("cert", "create-csr", "--device-id", "device-001")
    assert csr.returncode == 0, csr.stderr
    cert = gateway.pki.ca.sign_csr(Path(csr.stdout.strip()).read_bytes())
    gateway.set("device.cert_path", str(cert))

    shown = gateway.agent("cert", "show", "c8y")
    assert f"key origin:  {HARDWARE}" in shown.stdout
    assert "CKA_LOCAL=true, CKA_NEVER_EXTRACTABLE=true, CKA_ALWAYS_SENSITIVE=true" in shown.stdout
    doctor = gateway.agent("doctor", "c8y")
    assert f"✓ key origin (device.key_policy): {HARDWARE}" in doctor.stdout, doctor.stdout
    connected = gateway.agent("connect", "c8y")
    assert connected.returncode == 0, connected.stdout + connected.stderr


def test_hardware_policy_refuses_a_key_file(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory("off")
    gw.set("device.key_policy", "hardware")
    done = gw.agent("connect", "c8y")
    assert done.returncode == exit_code(errors.KeyPolicyRefused)
    assert "device.cryptoki.mode is 'off'" in done.stderr
    assert "key origin:  a key file" in gw.agent("cert", "show", "c8y").stdout


def _socket_gateway(
    gateway_factory: GatewayFactory,
    p11_server_factory: P11ServerFactory,
    token: SoftHsmToken,
    uri: str,
    public: ec.EllipticCurvePublicKey,
) -> Gateway:
    """A socket-mode gateway; its signing service (`agent p11-server`) serves the key at ``uri``."""
    key = TokenKey(uri, public, "device-key", b"", "ec-p256")
    server = p11_server_factory(token, key)
    server.start()
    gw = gateway_factory("socket", socket_path=server.socket_path)
    gw.use_key(key)
    gw.set("device.key_policy", "hardware")
    return gw


def test_hardware_policy_in_socket_mode_accepts_a_key_made_by_create_key(
    gateway: Gateway,
    gateway_factory: GatewayFactory,
    softhsm_token: SoftHsmToken,
    p11_server_factory: P11ServerFactory,
    tmp_path: Path,
) -> None:
    pem = tmp_path / "made.pub.pem"
    made = gateway.agent(
        "hsm", "create-key", "--token-uri", softhsm_token.uri, "--public-key", str(pem)
    )
    assert made.returncode == 0, made.stderr
    public = serialization.load_pem_public_key(pem.read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    gw = _socket_gateway(
        gateway_factory, p11_server_factory, softhsm_token, made.stdout.strip(), public
    )

    shown = gw.agent("cert", "show", "c8y")
    assert f"key origin:  {HARDWARE}" in shown.stdout, shown.stdout + shown.stderr
    assert "CKA_LOCAL=true, CKA_NEVER_EXTRACTABLE=true, CKA_ALWAYS_SENSITIVE=true" in shown.stdout
    doctor = gw.agent("doctor", "c8y")
    assert f"✓ key origin (device.key_policy): {HARDWARE}" in doctor.stdout, doctor.stdout
    csr = gw.agent("cert", "create-csr", "--device-id", "device-001")
    assert csr.returncode == 0, csr.stderr
    connected = gw.agent("connect", "c8y")
    assert connected.returncode == 0, connected.stdout + connected.stderr


def test_hardware_policy_in_socket_mode_refuses_an_imported_key(
    gateway_factory: GatewayFactory,
    softhsm_token: SoftHsmToken,
    p11_server_factory: P11ServerFactory,
    tmp_path: Path,
) -> None:
    public = _import_key(softhsm_token, tmp_path)
    gw = _socket_gateway(
        gateway_factory,
        p11_server_factory,
        softhsm_token,
        f"{softhsm_token.uri};object=imported;type=private",
        public,
    )
    refused = exit_code(errors.KeyPolicyRefused)

    connect = gw.agent("connect", "c8y")
    assert connect.returncode == refused, connect.stdout + connect.stderr
    assert "device.key_policy is 'hardware'" in connect.stderr
    assert "imported or extractable (CKA_LOCAL=false" in connect.stderr
    doctor = gw.agent("doctor", "c8y")
    assert doctor.returncode == refused
    assert "✗ key origin (device.key_policy)" in doctor.stdout
    csr = gw.agent("cert", "create-csr", "--device-id", "device-001")
    assert csr.returncode == refused, csr.stderr
    gw.set("device.key_policy", "any")
    shown = gw.agent("cert", "show", "c8y")
    assert f"key origin:  {IMPORTED}" in shown.stdout, shown.stdout + shown.stderr

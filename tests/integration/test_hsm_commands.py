"""`agent hsm ...` and `agent cert ...` in module mode, against a real SoftHSM2.

Each test gets its own SoftHSM2 token directory (``blank``), so "the only
token", "no token at all" and "several tokens" are what the test makes them.
Commands run as the user runs them: the real `agent` with a config dir.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from edgeagent import errors
from edgeagent.config import set_value
from tests.support.agent_cli import exit_code, run_agent
from tests.support.gateway import new_gateway
from tests.support.mosquitto import Mosquitto
from tests.support.pki import TestPki
from tests.support.softhsm import SOFTHSM_MODULE

pytestmark = pytest.mark.integration

SO_PIN = "12345678"
PIN = "123456"


@dataclass
class Device:
    """A config dir and a private SoftHSM2 token directory, driven through `agent`."""

    root: Path
    config_dir: Path
    env: dict[str, str]
    pin_file: Path
    so_pin_file: Path
    runs: list[str] = field(default_factory=list)

    def agent(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        softhsm = {"SOFTHSM2_CONF": self.env["SOFTHSM2_CONF"]}
        done = run_agent(*args, config_dir=self.config_dir, env=softhsm, timeout=timeout)
        self.runs.append(f"$ agent {' '.join(args)}\n{done.stdout}{done.stderr}")
        return done

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.agent(*args)
        assert done.returncode == 0, f"agent {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def set(self, key: str, value: str) -> None:
        set_value(self.config_dir, key, value)

    def tool(self, *args: str) -> str:
        done = subprocess.run(
            ["pkcs11-tool", "--module", str(SOFTHSM_MODULE), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=True,
        )
        return done.stdout

    def private_keys(self) -> str:
        return self.tool("--login", "--pin", PIN, "--list-objects", "--type", "privkey")

    def objects(self) -> str:
        return self.tool("--login", "--pin", PIN, "--list-objects")

    def init(self, label: str = "my-token") -> str:
        done = self.ok(
            "hsm", "init", "--token-label", label, "--so-pin-file", str(self.so_pin_file),
            "--pin-file", str(self.pin_file),
        )  # fmt: skip
        return done.stdout.strip()


def _write(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def device(tmp_path: Path) -> Device:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    config_dir = tmp_path / "etc-agent"
    env = dict(os.environ, SOFTHSM2_CONF=str(conf), AGENT_CONFIG_DIR=str(config_dir))
    env.pop("AGENT_DEVICE_CRYPTOKI_PIN", None)
    dev = Device(
        tmp_path, config_dir, env, _write(tmp_path / "pin", PIN), _write(tmp_path / "so", SO_PIN)
    )
    dev.set("device.cryptoki.mode", "module")
    dev.set("device.cryptoki.module_path", str(SOFTHSM_MODULE))
    dev.set("device.cert_path", str(tmp_path / "certs" / "device.pem"))
    return dev


# -- init ----------------------------------------------------------------------------------


def test_init_prints_the_uri_stores_the_pin_and_is_idempotent(device: Device) -> None:
    assert "not initialised" in device.ok("hsm", "list-tokens").stdout
    uri = device.init()
    assert uri.startswith("pkcs11:") and "token=my-token" in uri
    assert (device.config_dir / "agent.toml").read_text().count("pin") == 1
    assert device.ok("config", "get", "device.cryptoki.pin", "--reveal").stdout.strip() == PIN

    again = device.agent(
        "hsm", "init", "--token-label", "my-token", "--so-pin-file", str(device.so_pin_file)
    )
    assert again.returncode == 0 and again.stdout.strip() == uri
    assert "initialised already; unchanged" in again.stderr
    listing = device.ok("hsm", "list-tokens").stdout
    assert listing.count("token 'my-token'") == 1 and uri in listing


def test_init_names_the_slot_list_tokens_shows(device: Device) -> None:
    # SoftHSM2 renumbers a slot once its token is initialised (0 -> a number
    # made from the serial), seen from the next C_Initialize on.
    for label in ("first", "second"):
        done = device.ok(
            "hsm", "init", "--token-label", label, "--so-pin-file", str(device.so_pin_file),
            "--pin-file", str(device.pin_file),
        )  # fmt: skip
        said = re.search(rf"initialised token '{label}' in slot (\d+)", done.stderr)
        assert said, done.stderr
        listing = device.ok("hsm", "list-tokens").stdout
        assert f"slot {said.group(1)}: token '{label}'" in listing, (done.stderr, listing)
        again = device.ok(
            "hsm", "init", "--token-label", label, "--so-pin-file", str(device.so_pin_file)
        )
        assert f"token '{label}' (slot {said.group(1)}) is initialised already" in again.stderr


def test_init_refuses_to_reinitialise_a_token_in_use(device: Device) -> None:
    device.init()
    device.ok("hsm", "create-key")
    done = device.agent(
        "hsm", "init", "--token-label", "my-token", "--force",
        "--so-pin-file", str(device.so_pin_file),
    )  # fmt: skip
    assert done.returncode == exit_code(errors.TokenInUse), done.stderr
    assert "is in use and was not re-initialised" in done.stderr
    assert "device.key_uri" in done.stderr
    assert "device-key" in device.private_keys()  # untouched


def test_init_refuses_a_token_named_by_a_key_uri_even_when_empty(device: Device) -> None:
    device.init("empty-token")
    device.set("c8y.device.key_uri", "pkcs11:token=empty-token;object=later")
    done = device.agent(
        "hsm", "init", "--label", "empty-token", "--reinit",
        "--so-pin-file", str(device.so_pin_file),
    )  # fmt: skip
    assert done.returncode == exit_code(errors.TokenInUse)
    assert "c8y.device.key_uri" in done.stderr
    # The old spellings (--label, --reinit) still work this release, and say so.
    assert "warning: --label is deprecated" in done.stderr and "use --token-label" in done.stderr
    assert "warning: --reinit is deprecated" in done.stderr and "use --force" in done.stderr


def test_a_pin_is_never_taken_from_nowhere(device: Device) -> None:
    done = device.agent("hsm", "init", "--token-label", "t", "--pin-file", str(device.pin_file))
    assert done.returncode == exit_code(errors.MissingConfigValue)
    assert "no terminal" in done.stderr and "--so-pin-file" in done.stderr
    assert "not initialised" in device.ok("hsm", "list-tokens").stdout


def test_a_wrong_so_pin_is_reported_and_not_retried(device: Device) -> None:
    device.init()
    wrong = _write(device.root / "wrong", "00000000")
    device.set("device.cryptoki.pin", PIN)
    done = device.agent(
        "hsm", "change-pin", "--reset", "--so-pin-file", str(wrong),
        "--new-pin-file", str(device.pin_file),
    )  # fmt: skip
    assert done.returncode == exit_code(errors.PinIncorrect), done.stderr
    assert "CKR_PIN_INCORRECT" in done.stderr and "not retried" in done.stderr


# -- create-key ------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"])
def test_create_key_makes_a_non_extractable_sensitive_key(device: Device, spec: str) -> None:
    device.init()
    public = device.root / "public.pem"
    done = device.ok("hsm", "create-key", "--type", spec, "--public-key", str(public))
    uri = done.stdout.strip()
    assert uri.endswith(";type=private") and "object=device-key" in uri
    assert "set device.key_uri" in done.stderr
    assert device.ok("config", "get", "device.key_uri").stdout.strip() == uri

    keys = device.private_keys()
    assert "sensitive, always sensitive, never extractable, local" in keys
    assert "Usage:      sign" in keys and "decrypt" not in keys and "derive" not in keys
    key = serialization.load_pem_public_key(public.read_bytes())
    if spec.startswith("ec"):
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.key_size == int(spec[-3:])
    else:
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == int(spec[4:])
    assert f"id {_id_of(uri)}" in device.ok("hsm", "list-keys").stdout


def _id_of(uri: str) -> str:
    text = uri.split(";id=")[1].split(";")[0]
    return text.replace("%", "").lower()


def test_key_attributes_read_back_with_python_pkcs11(device: Device) -> None:
    device.init()
    device.ok("hsm", "create-key", "--label", "attrs", "--id", "0a0b")
    script = (
        "import pkcs11, sys; from pkcs11 import Attribute as A, ObjectClass\n"
        f"t = pkcs11.lib('{SOFTHSM_MODULE}').get_token(token_label='my-token')\n"
        f"with t.open(user_pin='{PIN}') as s:\n"
        "    [k] = s.get_objects({A.CLASS: ObjectClass.PRIVATE_KEY, A.LABEL: 'attrs'})\n"
        "    print([k[a] for a in (A.TOKEN, A.PRIVATE, A.SENSITIVE, A.EXTRACTABLE,"
        " A.NEVER_EXTRACTABLE, A.ALWAYS_SENSITIVE, A.SIGN, A.DECRYPT, A.DERIVE)], k[A.ID].hex())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, env=device.env, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert out.strip() == "[True, True, True, False, True, True, True, False, False] 0a0b"


def test_create_key_reuses_the_label_unless_force_new(device: Device) -> None:
    device.init()
    first = device.ok("hsm", "create-key").stdout.strip()
    again = device.ok("hsm", "create-key")
    assert again.stdout.strip() == first and "reusing the existing" in again.stderr
    new = device.ok("hsm", "create-key", "--new-key")
    assert new.stdout.strip() != first and "created" in new.stderr
    # device.key_uri still names the first key, which exists: left alone, command printed.
    assert device.ok("config", "get", "device.key_uri").stdout.strip() == first
    assert f'agent config set device.key_uri "{new.stdout.strip()}"' in new.stderr
    assert device.private_keys().count("label:      device-key") == 2


def test_create_key_for_a_cloud_writes_its_key_uri(device: Device) -> None:
    device.init()
    done = device.ok("hsm", "create-key", "c8y", "--label", "c8y-key")
    assert device.ok("config", "get", "c8y.device.key_uri").stdout.strip() == done.stdout.strip()
    assert device.agent("config", "get", "device.key_uri").returncode != 0


def test_create_key_with_no_token_initialises_one(device: Device) -> None:
    device.set("device.cryptoki.pin", PIN)
    done = device.ok("hsm", "create-key", "--so-pin-file", str(device.so_pin_file))
    assert "no token yet: initialising one labelled 'device'" in done.stderr
    assert "token=device;" in done.stdout


def test_create_key_with_several_tokens_lists_them_and_fails(device: Device) -> None:
    device.init("one")
    device.init("two")
    done = device.agent("hsm", "create-key")
    assert done.returncode == exit_code(errors.TokenAmbiguous)
    assert "token=one" in done.stderr and "token=two" in done.stderr
    assert "--token-uri" in done.stderr
    named = device.ok("hsm", "create-key", "--token-uri", "pkcs11:token=two")
    assert "token=two;" in named.stdout

    # Listing across several tokens spends no PIN: public objects only.
    device.set("device.cryptoki.pin", "000000")
    listed = device.ok("hsm", "list-keys")
    assert "token 'two': key 'device-key'" in listed.stdout
    device.set("device.cryptoki.pin", PIN)
    assert "CKF_USER_PIN_COUNT_LOW" not in device.tool("--list-token-slots")
    assert "count low" not in device.tool("--list-token-slots")


def test_a_refused_template_leaves_no_orphan(softhsm, caplog) -> None:  # type: ignore[no-untyped-def]
    """SoftHSM2 refuses CKA_EC_PARAMS in the private template and keeps half a key: removed."""
    import logging

    from edgeagent.pkcs11 import admin
    from edgeagent.pkcs11.module import load_module
    from edgeagent.pkcs11.uri import Pkcs11Uri

    token = softhsm.create_token()
    module = load_module(SOFTHSM_MODULE)
    found = admin.choose_token(module, Pkcs11Uri(token=token.label))
    caplog.set_level(logging.INFO, logger="edgeagent.pkcs11")
    mapper = admin.KeyTemplates()
    with admin.admin_session(module, found, token.pin, templates=mapper) as session:
        standard, alternative, _ = admin.key_pair_templates("ec-p256", "k", b"\x01")
        key = admin.generate_key_pair(
            session, "ec-p256", "k", b"\x01", mapper, [alternative, standard]
        )
        assert key.label == "k"
        everything = list(session.get_objects({}))
    assert "refused the CKA_EC_PARAMS in both templates key template" in caplog.text
    assert "removing an object a refused key generation left behind" in caplog.text
    assert len(everything) == 2  # the pair, and no orphan


# -- delete-key --------------------------------------------------------------------------------


def test_delete_key_refuses_a_configured_key_unless_forced(device: Device) -> None:
    device.init()
    uri = device.ok("hsm", "create-key").stdout.strip()
    done = device.agent("hsm", "delete-key", "--label", "device-key")
    assert done.returncode == exit_code(errors.KeyInUse)
    assert "device.key_uri" in done.stderr and "--force" in done.stderr
    assert "device-key" in device.private_keys()

    done = device.ok("hsm", "delete-key", "--label", "device-key", "--force")
    assert f"deleted private key {uri}" in done.stdout
    assert "deleted public key" in done.stdout
    assert "device-key" not in device.objects()


def test_delete_key_removes_the_certificate_object_with_the_same_id(device: Device) -> None:
    device.init()
    device.ok("hsm", "create-key", "--label", "spare", "--id", "5a")
    device.set("device.key_uri", "pkcs11:token=my-token;object=other")
    cert = device.root / "c.der"
    cert.write_bytes(_some_certificate_der())
    device.tool(
        "--login", "--pin", PIN, "--write-object", str(cert), "--type", "cert", "--id", "5a",
        "--label", "spare",
    )  # fmt: skip
    assert "Certificate Object" in device.objects()
    done = device.ok("hsm", "delete-key", "--id", "5a")
    assert "deleted certificate with id 5a" in done.stdout
    assert "spare" not in device.objects()


def _some_certificate_der() -> bytes:
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spare")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


# -- change-pin --------------------------------------------------------------------------------


def test_change_pin_keeps_the_config_in_sync(device: Device) -> None:
    device.init()
    device.ok("hsm", "create-key")
    new = _write(device.root / "new", "654321")
    done = device.ok("hsm", "change-pin", "--new-pin-file", str(new))
    assert "user PIN of token 'my-token' changed" in done.stdout
    assert device.ok("config", "get", "device.cryptoki.pin", "--reveal").stdout.strip() == "654321"
    assert "device-key" in device.ok("hsm", "list-keys").stdout  # logs in with the new PIN

    reset = device.ok(
        "hsm", "change-pin", "--reset", "--so-pin-file", str(device.so_pin_file),
        "--new-pin-file", str(device.pin_file),
    )  # fmt: skip
    assert "reset with the SO PIN" in reset.stdout
    assert device.ok("config", "get", "device.cryptoki.pin", "--reveal").stdout.strip() == PIN
    assert "device-key" in device.private_keys()  # pkcs11-tool logs in with PIN again


def test_a_wrong_old_pin_fails_once_and_changes_nothing(device: Device) -> None:
    device.init()
    wrong = _write(device.root / "wrong", "999999")
    new = _write(device.root / "new", "654321")
    done = device.agent("hsm", "change-pin", "--pin-file", str(wrong), "--new-pin-file", str(new))
    assert done.returncode == exit_code(errors.PinIncorrect)
    assert device.ok("config", "get", "device.cryptoki.pin", "--reveal").stdout.strip() == PIN


# -- certificates --------------------------------------------------------------------------------


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("spec", "pss", "oid"),
    [
        ("ec-p256", False, SignatureAlgorithmOID.ECDSA_WITH_SHA256),
        ("ec-p384", False, SignatureAlgorithmOID.ECDSA_WITH_SHA384),
        ("rsa-2048", False, SignatureAlgorithmOID.RSA_WITH_SHA256),
        ("rsa-2048", True, SignatureAlgorithmOID.RSASSA_PSS),
    ],
)
def test_certificates_and_csrs_declare_the_scheme_that_signed_them(
    device: Device, spec: str, pss: bool, oid: x509.ObjectIdentifier
) -> None:
    device.init()
    device.ok("hsm", "create-key", "--type", spec)
    extra = ["--rsa-pss"] if pss else []
    cert_path = Path(device.ok("cert", "create", "--device-id", "dev-1", *extra).stdout.strip())
    csr_path = Path(device.ok("cert", "create-csr", *extra).stdout.strip())

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    for item in (cert, csr):
        assert item.signature_algorithm_oid == oid
        assert item.subject.rfc4514_string() == "CN=dev-1"
    if pss:
        params = cert.signature_algorithm_parameters
        assert isinstance(params, padding.PSS)
        assert (
            "Salt Length: 0x20" in openssl("x509", "-in", str(cert_path), "-noout", "-text").stdout
        )
    assert csr.is_signature_valid
    cert.verify_directly_issued_by(cert)
    req = openssl("req", "-in", str(csr_path), "-verify", "-noout")
    assert req.returncode == 0 and "verify OK" in req.stdout + req.stderr
    # OpenSSL 3.0's x509 has no -verify; `openssl verify` checks the self-signature.
    verify = openssl("verify", "-CAfile", str(cert_path), str(cert_path))
    assert verify.returncode == 0 and ": OK" in verify.stdout


def test_cert_show_create_refusal_and_renew(device: Device, pki: TestPki) -> None:
    device.init()
    uri = device.ok("hsm", "create-key").stdout.strip()
    device.ok("cert", "create", "--device-id", "dev-7")
    again = device.agent("cert", "create", "--device-id", "dev-7")
    assert again.returncode == exit_code(errors.CertificateExists)

    shown = device.ok("cert", "show").stdout
    assert "subject:     CN=dev-7" in shown and "(self-signed)" in shown
    assert f"key:         {uri}" in shown and "key matches: yes" in shown

    renewed = device.ok("cert", "renew", "--new-key")
    assert "renewed self-signed certificate" in renewed.stderr
    new_uri = device.ok("config", "get", "device.key_uri").stdout.strip()
    assert new_uri != uri and "object=device-key-" in new_uri
    assert "key matches: yes" in device.ok("cert", "show").stdout

    # A CA-issued certificate: renew makes a CSR, and --new-key leaves key_uri alone.
    cert_path = device.root / "certs" / "device.pem"
    csr_path = Path(device.ok("cert", "create-csr").stdout.strip())
    pki.ca.sign_csr(csr_path.read_bytes(), path=cert_path)
    csr = device.ok("cert", "renew", "--new-key", "--csr")
    assert "certificate signing request" in csr.stderr
    assert 'agent config set device.key_uri "pkcs11:' in csr.stderr
    assert device.ok("config", "get", "device.key_uri").stdout.strip() == new_uri

    # The certificate of another key: show says so, with its exit code.
    device.set("device.key_uri", uri)
    mismatch = device.agent("cert", "show")
    assert mismatch.returncode == exit_code(errors.CertificateKeyMismatch)
    assert "key matches: NO" in mismatch.stdout


def test_create_csr_refuses_to_overwrite_a_csr_without_force(device: Device) -> None:
    device.init()
    device.ok("hsm", "create-key")
    csr_path = Path(device.ok("cert", "create-csr", "--device-id", "dev-8").stdout.strip())
    first = csr_path.read_bytes()
    again = device.agent("cert", "create-csr", "--device-id", "dev-9")
    assert again.returncode == exit_code(errors.CertificateExists), again.stderr
    assert f"{csr_path} exists" in again.stderr and "--force" in again.stderr
    assert csr_path.read_bytes() == first  # the CSR a CA may be signing is untouched
    other = device.ok(
        "cert", "create-csr", "--device-id", "dev-9", "--output", str(device.root / "other.csr")
    )
    assert Path(other.stdout.strip()).name == "other.csr"
    forced = device.ok("cert", "create-csr", "--device-id", "dev-9", "--force")
    assert Path(forced.stdout.strip()) == csr_path
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.subject.rfc4514_string() == "CN=dev-9"


# -- from a blank token to a connected device ----------------------------------------------


@pytest.fixture
def brokers(
    local_broker: Mosquitto, cloud_broker: Mosquitto, pki: TestPki
) -> Iterator[tuple[Mosquitto, Mosquitto, TestPki]]:
    yield local_broker, cloud_broker, pki


def test_blank_token_to_connected_device(
    device: Device, brokers: tuple[Mosquitto, Mosquitto, TestPki]
) -> None:
    local, cloud, pki = brokers
    gw = new_gateway(device.root, local, cloud, pki)  # c8y and the brokers in device's config

    token_uri = device.init("gateway")
    key_uri = device.ok("hsm", "create-key", "--token-uri", token_uri).stdout.strip()
    csr_path = Path(device.ok("cert", "create-csr", "--device-id", "device-042").stdout.strip())
    cert_path = device.root / "certs" / "device.pem"
    pki.ca.sign_csr(csr_path.read_bytes(), path=cert_path)
    assert "key matches: yes" in device.ok("cert", "show").stdout

    try:
        connected = device.ok("connect", "c8y")
        assert f"key: {key_uri}" in connected.stdout
        assert "device id: device-042" in connected.stdout

        up, down = gw.exchange(b"100,edge,c8y_Gateway", b"510,device-042")
        assert up.payload == b"100,edge,c8y_Gateway"
        assert down.payload == b"510,device-042"
    finally:
        device.agent("disconnect", "c8y")
    assert "device-042" in cloud.log_text()
    # The private key exists only inside the token.
    assert not list(device.root.rglob("*.key"))
    print("\n".join(device.runs))

"""`agent cert download`: from a blank token to a connected device, with a stand-in EST server.

Real parts: a blank SoftHSM token (no key), the stand-in EST server
(integration/standin/est.py, HTTPS, certificates from the test CA), the
stand-in cloud broker (mosquitto, client certificates from the same CA).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from subprocess import CompletedProcess

from cryptography import x509

from edgeagent import errors
from integration.standin.est import CERTS_ONLY, EstStandin
from tests.support.agent_cli import AGENT, exit_code, run_agent
from tests.support.gateway import Gateway
from tests.support.pki import TestPki
from tests.support.softhsm import SoftHsmToken

DEVICE = "device-001"


def _wire(gateway: Gateway, est: EstStandin, tmp_path: Path, token: SoftHsmToken) -> Path:
    """The EST server, a certificate path with nothing there, the token by name (no key yet)."""
    gateway.set("c8y.http", est.address)
    gateway.set("device.key_uri", token.uri)
    cert_path = tmp_path / "certs" / "device.pem"
    gateway.set("device.cert_path", str(cert_path))
    return cert_path


def _with_password(gateway: Gateway, password: str, *args: str) -> CompletedProcess[str]:
    """The agent with the one-time password in the environment, as a provisioning job passes it."""
    env = {"EDGEAGENT_ONE_TIME_PASSWORD": password}
    return run_agent(*args, config_dir=gateway.config_dir, env=env)


def _password_file(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "otp"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def test_blank_token_to_connected_device(
    gateway: Gateway, est: EstStandin, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    cert_path = _wire(gateway, est, tmp_path, softhsm_token)
    est.register(DEVICE, "otp-1234-secret")
    est.not_yet = 2  # the registration "arrives" after two refusals

    done = gateway.agent(
        "cert",
        "download",
        "c8y",
        "--device-id",
        DEVICE,
        "--one-time-password-file",
        str(_password_file(tmp_path, "otp-1234-secret")),
        "--retry-every",
        "0.2",
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(cert_path)
    assert "no device key yet: created" in done.stderr
    assert done.stderr.count("not registered yet (HTTP 401)") == 2
    assert "otp-1234-secret" not in done.stdout + done.stderr
    assert [(e.path, e.auth, e.content_type, e.status, e.answer_type) for e in est.exchanges] == [
        ("/.well-known/est/simpleenroll", "basic", "application/pkcs10", 401, "text/plain"),
        ("/.well-known/est/simpleenroll", "basic", "application/pkcs10", 401, "text/plain"),
        ("/.well-known/est/simpleenroll", "basic", "application/pkcs10", 200, CERTS_ONLY),
    ]
    installed = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert installed == est.issued[0]
    assert installed.issuer == gateway.pki.ca.cert.subject
    key_uri = gateway.agent("config", "get", "device.key_uri")
    assert f";token={softhsm_token.label};object=device-key;" in key_uri.stdout

    connected = gateway.agent("connect", "c8y")
    assert connected.returncode == 0, connected.stderr
    up, down = gateway.exchange(b"200,c8y_Temperature,T,25", b"510,device-001")
    assert up.payload == b"200,c8y_Temperature,T,25"
    assert down.payload == b"510,device-001"


def test_generated_password_is_printed_and_the_download_waits_for_registration(
    gateway: Gateway, est: EstStandin, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    cert_path = _wire(gateway, est, tmp_path, softhsm_token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env["AGENT_CONFIG_DIR"] = str(gateway.config_dir)
    child = subprocess.Popen(
        [str(AGENT), "cert", "download", "c8y", "--device-id", DEVICE, "--retry-every", "0.2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        lines = [child.stdout.readline() for _ in range(5)]
        password = next(ln.split(":", 1)[1].strip() for ln in lines if "one-time password:" in ln)
        assert len(password) >= 20
        time.sleep(0.5)  # the device asks before anyone registered it
        est.register(DEVICE, password)  # the user types it into the cloud's UI
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out.strip() == str(cert_path)
    assert "not registered yet" in err
    assert est.exchanges[-1].status == 200
    assert {e.status for e in est.exchanges[:-1]} == {401}


def test_a_wrong_password_times_out_and_installs_nothing(
    gateway: Gateway, est: EstStandin, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    cert_path = _wire(gateway, est, tmp_path, softhsm_token)
    est.register(DEVICE, "the-right-one")
    done = _with_password(
        gateway,
        "a-wrong-one",
        *("cert", "download", "c8y", "--device-id", DEVICE, "--retry-every", "0.2"),
        *("--max-wait", "1"),
    )
    assert done.returncode == exit_code(errors.EnrolmentTimedOut), done.stderr
    assert "register the device" in done.stderr
    assert "a-wrong-one" not in done.stdout + done.stderr
    assert not cert_path.exists()


def test_a_working_certificate_is_replaced_only_with_force(
    gateway: Gateway, est: EstStandin, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    _wire(gateway, est, tmp_path, softhsm_token)
    key = gateway.new_device_key(softhsm_token)  # a working certificate, from the CA by hand
    working = Path(gateway.agent("config", "get", "device.cert_path").stdout.strip())
    before = working.read_bytes()
    est.register(DEVICE, "pw-1")
    args = ("cert", "download", "c8y", "--device-id", DEVICE)

    refused = _with_password(gateway, "pw-1", *args)
    assert refused.returncode == exit_code(errors.CertificateExists), refused.stderr
    assert "--force" in refused.stderr
    assert working.read_bytes() == before
    assert est.exchanges == []  # refused before the one-time password was spent

    forced = _with_password(gateway, "pw-1", *args, "--force")
    assert forced.returncode == 0, forced.stderr
    installed = x509.load_pem_x509_certificate(working.read_bytes())
    assert installed == est.issued[0]
    assert installed.public_key() == key.public_key


def test_an_untrusted_est_server_is_refused(
    gateway: Gateway, est: EstStandin, softhsm_token: SoftHsmToken, pki: TestPki, tmp_path: Path
) -> None:
    cert_path = _wire(gateway, est, tmp_path, softhsm_token)
    gateway.set("c8y.root_cert_path", str(pki.other_ca.cert_path))
    done = _with_password(gateway, "x", "cert", "download", "c8y", "--device-id", DEVICE)
    assert done.returncode == exit_code(errors.ServerCertificateUntrusted), done.stderr
    assert est.exchanges == []
    assert not cert_path.exists()


def test_a_host_name_the_certificate_is_not_for_is_refused(
    gateway: Gateway, softhsm_token: SoftHsmToken, pki: TestPki, tmp_path: Path
) -> None:
    only_localhost = pki.ca.issue_server(["localhost"])  # dialled as 127.0.0.1
    with EstStandin(
        pki.ca.cert_path, pki.ca.key_path, only_localhost.cert_path, only_localhost.key_path
    ) as est:
        cert_path = _wire(gateway, est, tmp_path, softhsm_token)
        done = _with_password(gateway, "x", "cert", "download", "c8y", "--device-id", DEVICE)
    assert done.returncode == exit_code(errors.ServerHostnameMismatch), done.stderr
    assert "127.0.0.1" in done.stderr
    assert est.exchanges == []
    assert not cert_path.exists()

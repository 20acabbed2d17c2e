"""`agent connect c8y` end to end: a SoftHSM2 token, a local mosquitto and a
stand-in cloud (mosquitto, TLS 1.3, client certificates required).

The device key is generated on the token and never leaves it; the device
certificate is issued by the test CA for the token key's public half.
"""

from __future__ import annotations

import time

import pytest

from edgeagent import errors
from edgeagent.bridge.status_file import read_status, status_path
from edgeagent.clouds.connect import connect
from tests.support.agent_cli import exit_code
from tests.support.gateway import Gateway, Progress, issue_device_cert, process_alive
from tests.support.mosquitto import Mosquitto, MosquittoFactory, TlsListener
from tests.support.pki import TestPki
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsm, SoftHsmToken

pytestmark = pytest.mark.integration

# `gateway` (tests/support/gateway.py): module mode on `softhsm_token`, no key yet.


@pytest.mark.parametrize("spec", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"])
def test_connect_bridges_both_ways_with_the_key_on_the_token(
    gateway: Gateway, softhsm_token: SoftHsmToken, spec: str
) -> None:
    key = gateway.new_device_key(softhsm_token, spec)

    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"key access: module ({SOFTHSM_MODULE})" in done.stdout
    assert "cryptoki: true" not in done.stdout  # the mode says more (issue 12 part 9)
    assert "key: pkcs11:" in done.stdout and "object=device-key" in done.stdout
    assert "device id: device-001" in done.stdout
    assert "✗" not in done.stdout

    up, down = gateway.exchange(b"200,c8y_Temperature,T,25", b"510,device-001")
    assert up.payload == b"200,c8y_Temperature,T,25"
    assert up.qos == 1
    assert down.payload == b"510,device-001"
    assert down.qos == 1

    # The cloud saw the device under its certificate's CN, over the token key.
    assert "device-001" in gateway.cloud.log_text()
    assert key.spec == spec


def test_qos0_is_forwarded_as_qos0(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    with gateway.cloud_app() as cloud, gateway.local_client() as local:
        cloud.subscribe("measurement/measurements/create/#", qos=1)
        assert gateway.agent("connect", "c8y").returncode == 0
        local.publish("c8y/measurement/measurements/create/t", b"{}", qos=0)
        [msg] = cloud.wait_for(1, "measurement/measurements/create/t", timeout=15)
        assert msg.qos == 0


def test_topics_without_a_rule_do_not_cross(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    with gateway.cloud_app() as cloud, gateway.local_client() as local:
        cloud.subscribe("#", qos=1)
        assert gateway.agent("connect", "c8y").returncode == 0
        local.publish("c8y/not/a/rule", b"secret", qos=1)
        local.publish("c8y/s/us", b"marker", qos=1)
        got = cloud.wait_for(1, "s/us", timeout=15)
        assert [m.payload for m in got] == [b"marker"]
        assert all(m.topic != "not/a/rule" for m in cloud.messages)


def test_disconnect_stops_the_bridge_and_reconnect_restarts_it(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    assert gateway.agent("connect", "c8y").returncode == 0
    pid_file = gateway.run_dir / "bridge-c8y.pid"
    first_pid = int(pid_file.read_text())

    again = gateway.agent("connect", "c8y")
    assert again.returncode == exit_code(errors.BridgeAlreadyRunning)
    assert "already connected" in again.stderr and "agent reconnect c8y" in again.stderr
    # The refusal is a step of its own: stdout ends on its ✗, not on a ✓.
    assert again.stdout.rstrip().endswith("Checking that no Cumulocity bridge runs... ✗")

    first = read_status(status_path(gateway.run_dir, "c8y"))
    assert first is not None
    time.sleep(1.1)  # started_at is to the second
    done = gateway.agent("reconnect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    # The bridge host restarts the cloud inside itself (N3): the same process,
    # never one with no cloud in between, and a new bridge in it.
    second_pid = int(pid_file.read_text())
    assert second_pid == first_pid and "Restarting the running" in done.stdout
    second = read_status(status_path(gateway.run_dir, "c8y"))
    assert second is not None and second.started_at > first.started_at

    done = gateway.agent("disconnect", "c8y")
    assert done.returncode == 0
    assert not pid_file.exists()
    assert not process_alive(second_pid)

    done = gateway.agent("disconnect", "c8y")
    assert done.returncode == 0
    assert "not connected" in done.stdout


def test_no_message_is_lost_while_the_cloud_is_away(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    assert gateway.agent("connect", "c8y").returncode == 0
    count = 300
    assert gateway.publish_while_the_cloud_is_away(count, timeout=90) == set(range(count))


# -- the connection is refused before any MQTT byte when the cloud is not who it claims


def _connect_error(gw: Gateway) -> errors.AgentError:
    with pytest.raises(errors.AgentError) as caught:
        connect(gw.config_dir, "c8y", Progress())
    return caught.value


def _impostor(
    factory: MosquittoFactory,
    pki: TestPki,
    *,
    hostnames: list[str] | None = None,
    issuer: str = "ca",
    expired: bool = False,
) -> Mosquitto:
    ca = pki.ca if issuer == "ca" else pki.other_ca
    if expired:
        server = ca.issue_expired_server(["localhost"], ["127.0.0.1"])
    else:
        server = ca.issue_server(hostnames or ["localhost"], [])
    return factory(
        plain=False, tls=TlsListener.for_server(server, client_ca=pki.ca.cert_path), name="impostor"
    )


@pytest.mark.parametrize(
    ("variant", "error", "words"),
    [
        (
            {"issuer": "other"},
            errors.ServerCertificateUntrusted,
            "the cloud's certificate is not signed by a CA in c8y.root_cert_path (",
        ),
        ({"hostnames": ["cloud.example.com"]}, errors.ServerHostnameMismatch, "cloud.example.com"),
        ({"expired": True}, errors.ServerCertificateExpired, "valid only from"),
    ],
)
def test_untrusted_cloud_is_refused_before_mqtt(
    gateway: Gateway,
    softhsm_token: SoftHsmToken,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
    variant: dict[str, object],
    error: type[errors.AgentError],
    words: str,
) -> None:
    gateway.new_device_key(softhsm_token)
    impostor = _impostor(mosquitto_factory, pki, **variant)  # type: ignore[arg-type]
    gateway.set("c8y.url", impostor.url)

    failure = _connect_error(gateway)

    assert type(failure) is error
    assert words in failure.cause
    assert failure.fix
    # The broker never saw an MQTT CONNECT from us.
    assert "New client connected" not in impostor.log_text()
    assert not (gateway.run_dir / "bridge-c8y.pid").exists()


# -- token-side failures: each its own message, fix and exit code


def test_wrong_pin_is_reported_as_such(gateway: Gateway, softhsm_token: SoftHsmToken) -> None:
    gateway.new_device_key(softhsm_token)
    gateway.set("device.cryptoki.pin", "000000")
    done = gateway.agent("connect", "c8y")
    assert done.returncode == exit_code(errors.PinIncorrect), done.stderr
    assert "PIN" in done.stderr and softhsm_token.label in done.stderr
    assert "device.cryptoki.pin" in done.stderr
    assert "000000" not in done.stderr + done.stdout


def test_missing_key_lists_the_keys_that_exist(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    key = gateway.new_device_key(softhsm_token)
    gateway.set("device.key_uri", f"pkcs11:token={softhsm_token.label};object=no-such-key")
    done = gateway.agent("connect", "c8y")
    assert done.returncode == exit_code(errors.KeyNotFound), done.stderr
    assert "no-such-key" in done.stderr
    assert f"object={key.label}" in done.stderr


def test_certificate_of_another_key_is_refused(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    gateway.new_device_key(softhsm_token)
    other = softhsm_token.generate_key("ec-p256", label="other")
    gateway.set("device.cert_path", str(issue_device_cert(gateway, other)))
    done = gateway.agent("connect", "c8y")
    assert done.returncode == exit_code(errors.CertificateKeyMismatch), done.stderr
    assert "is not for the key" in done.stderr


def test_ambiguous_uri_warns_names_candidates_and_connects(
    gateway: Gateway, softhsm_token: SoftHsmToken, caplog: pytest.LogCaptureFixture
) -> None:
    from edgeagent.pkcs11.module import load_module
    from edgeagent.pkcs11.select import select_key
    from edgeagent.pkcs11.uri import Pkcs11Uri

    first = softhsm_token.generate_key("ec-p256", label="a")
    second = softhsm_token.generate_key("ec-p256", label="b")
    token_only = softhsm_token.uri
    # Which one "first" is, is the token's order: ask the same selection.
    selected = select_key(
        load_module(SOFTHSM_MODULE), Pkcs11Uri.parse(token_only), softhsm_token.pin
    )
    chosen = first if f"object={first.label};" in str(selected.uri) + ";" else second
    selected.session.release()
    gateway.set("device.key_uri", token_only)
    gateway.set("device.cert_path", str(issue_device_cert(gateway, chosen)))

    done = gateway.agent("connect", "c8y")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 private keys match" in done.stderr
    assert f"object={first.label}" in done.stderr and f"object={second.label}" in done.stderr
    assert "device.key_uri" in done.stderr


def test_pin_never_reaches_output_or_logs(gateway: Gateway, softhsm: SoftHsm) -> None:
    secret = "S3cret-P1N-4242"
    token = softhsm.create_token(pin=secret)
    gateway.new_device_key(token)
    gateway.set("device.cryptoki.pin", secret)

    done = gateway.agent("-v", "connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = gateway.agent("config", "list")
    logs = "".join(p.read_text() for p in (gateway.config_dir.parent / "log").glob("*"))

    assert secret not in done.stdout + done.stderr + listed.stdout + listed.stderr + logs

"""The broker fixtures are real and strict.

Every other integration test trusts that `cloud_broker` accepts only TLS 1.3
with a client certificate from `pki.ca`, and that `local_broker` does not
drop messages. These tests prove it with plain Python `ssl` clients, so a
bug in the agent's own TLS code cannot hide a permissive broker.
"""

from __future__ import annotations

import socket
import ssl
import struct
from pathlib import Path

import pytest

from tests.support.mosquitto import (
    Mosquitto,
    MosquittoError,
    MosquittoFactory,
    TlsListener,
)
from tests.support.mqtt_probe import MqttProbe, ProbeConnectError, client_tls_context
from tests.support.pki import ClientCredentials, TestPki
from tests.support.ports import free_port, port_accepts, wait_for_port

pytestmark = pytest.mark.integration

CONNACK_OK = b"\x20\x02\x00\x00"


def _mqtt_connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def _raw_connect(ctx: ssl.SSLContext | None, port: int, hostname: str = "localhost") -> bytes:
    """Open TCP (+ TLS), send CONNECT, return the first bytes the broker answers.

    In TLS 1.3 the server checks the client certificate after the client
    considers the handshake done, so a refusal shows up on the first read.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if ctx is None:
            sock.sendall(_mqtt_connect_packet("raw-probe"))
            return sock.recv(4)
        with ctx.wrap_socket(sock, server_hostname=hostname) as tls:
            tls.sendall(_mqtt_connect_packet("raw-probe"))
            data = tls.recv(4)
            assert tls.version() == "TLSv1.3"
            return data


def _refusal(ctx: ssl.SSLContext | None, port: int, hostname: str = "localhost") -> str:
    """Connect expecting a refusal; return what it looked like. Fails on a CONNACK.

    With TLS, read before writing: the server's alert arrives right after
    the handshake, and writing to a socket the server already closed can
    turn the alert into a bare reset.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            if ctx is None:
                sock.sendall(_mqtt_connect_packet("raw-probe"))
                data = sock.recv(4)
            else:
                with ctx.wrap_socket(sock, server_hostname=hostname) as tls:
                    tls.settimeout(1.0)
                    try:
                        data = tls.recv(4)  # the alert, if the server refuses us
                    except TimeoutError:  # no alert: the server took our certificate
                        tls.settimeout(5)
                        tls.sendall(_mqtt_connect_packet("raw-probe"))
                        data = tls.recv(4)
    except (ssl.SSLError, ConnectionError, TimeoutError) as e:
        return repr(e)
    assert data != CONNACK_OK, "broker accepted a client it must refuse"
    return f"closed with {data!r}"


def _ctx(pki: TestPki, client: ClientCredentials | None = None, **kw: object) -> ssl.SSLContext:
    if client is None:
        return client_tls_context(pki.ca.cert_path, **kw)  # type: ignore[arg-type]
    return client_tls_context(pki.ca.cert_path, client.cert_path, client.key_path, **kw)  # type: ignore[arg-type]


# -- ports ------------------------------------------------------------------


def test_free_port_is_free_and_wait_for_port_sees_a_listener() -> None:
    port = free_port()
    assert 1024 < port < 65536
    assert not port_accepts("127.0.0.1", port)
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", port, timeout=0.2)
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        wait_for_port("127.0.0.1", port, timeout=2)


# -- local broker -------------------------------------------------------------


def test_local_broker_round_trip_keeps_qos(local_broker: Mosquitto) -> None:
    assert local_broker.is_running
    with (
        MqttProbe(local_broker.host, local_broker.port) as sub,
        MqttProbe(local_broker.host, local_broker.port) as pub,
    ):
        sub.subscribe("c8y/#", qos=2)
        pub.publish("c8y/s/us", b"200,temp,T,21", qos=1)
        pub.publish("c8y/t/us", "hello", qos=0)
        pub.publish("other/topic", b"not for sub", qos=1)
        got = sub.wait_for(2, "c8y/#", timeout=5)
        assert sorted((m.topic, m.payload, m.qos) for m in got) == [
            ("c8y/s/us", b"200,temp,T,21", 1),
            ("c8y/t/us", b"hello", 0),
        ]
        with pytest.raises(TimeoutError, match="2 of 3"):
            sub.wait_for(3, "c8y/#", timeout=0.3)


def test_local_broker_queues_more_than_mosquittos_default_1000(local_broker: Mosquitto) -> None:
    # mosquitto drops QoS 1 messages past max_queued_messages (default 1000)
    # for an offline persistent session; the fixture sets it to unlimited.
    count = 1500
    host, port = local_broker.host, local_broker.port
    sub = MqttProbe(host, port, client_id="slow-consumer", clean_session=False).connect()
    sub.subscribe("queued/#", qos=1)
    sub.disconnect()
    with MqttProbe(host, port) as pub:
        for i in range(count):
            pub.publish(f"queued/{i}", str(i), qos=1, timeout=10)
    with MqttProbe(host, port, client_id="slow-consumer", clean_session=False) as sub:
        got = sub.wait_for(count, "queued/#", timeout=30)
    assert sorted(int(m.payload) for m in got) == list(range(count))


def test_local_broker_restarts_on_the_same_port(local_broker: Mosquitto) -> None:
    port, pid = local_broker.port, local_broker.pid
    local_broker.stop()
    assert not local_broker.is_running
    assert not port_accepts("127.0.0.1", port)
    with pytest.raises(ProbeConnectError):
        MqttProbe(local_broker.host, port).connect(timeout=2)
    local_broker.start()
    assert local_broker.port == port and local_broker.pid != pid
    with MqttProbe(local_broker.host, port) as probe:
        assert probe.connected


def test_local_broker_config(local_broker: Mosquitto) -> None:
    conf = local_broker.conf_path.read_text()
    for line in ("max_queued_messages 0", "persistence false", "allow_anonymous true"):
        assert line in conf.splitlines()
    assert "running" in local_broker.log_text()


def test_bad_config_fails_start_with_the_log(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "bad", extra_config=["no_such_option 1"])
    with pytest.raises(MosquittoError, match="no_such_option"):
        broker.start(timeout=5)
    assert not broker.is_running


# -- stand-in cloud -----------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"])
def test_cloud_accepts_tls13_client_cert_from_the_ca(
    cloud_broker: Mosquitto, pki: TestPki, key_type: str
) -> None:
    client = pki.ca.issue_client_with_key(f"device-{key_type}", key_type)  # type: ignore[arg-type]
    assert _raw_connect(_ctx(pki, client), cloud_broker.tls_port) == CONNACK_OK


def test_cloud_round_trip_with_probe_and_cn_as_username(
    cloud_broker: Mosquitto, pki: TestPki
) -> None:
    client = pki.client("device-0042")
    ctx = _ctx(pki, client)
    with (
        MqttProbe(cloud_broker.hostname, cloud_broker.tls_port, tls=ctx) as sub,
        MqttProbe("127.0.0.1", cloud_broker.tls_port, tls=_ctx(pki, client)) as pub,
    ):
        sub.subscribe("s/us", qos=1)
        pub.publish("s/us", b"100,dev,c8y_Device", qos=1)
        [msg] = sub.wait_for(1, "s/us", timeout=5)
        assert (msg.payload, msg.qos) == (b"100,dev,c8y_Device", 1)
    assert cloud_broker.url == f"localhost:{cloud_broker.tls_port}"
    # use_identity_as_username: mosquitto logs the CN as the username (u'...').
    assert "u'device-0042'" in cloud_broker.log_text()


def test_cloud_refuses_client_without_certificate(cloud_broker: Mosquitto, pki: TestPki) -> None:
    how = _refusal(_ctx(pki), cloud_broker.tls_port)
    assert "CERTIFICATE_REQUIRED" in how
    with pytest.raises(ProbeConnectError):
        MqttProbe("localhost", cloud_broker.tls_port, tls=_ctx(pki)).connect(timeout=5)
    assert "peer did not return a certificate" in cloud_broker.log_text()


def test_cloud_refuses_certificate_from_another_ca(cloud_broker: Mosquitto, pki: TestPki) -> None:
    stranger = pki.other_ca.issue_client_with_key("device-0042")
    how = _refusal(_ctx(pki, stranger), cloud_broker.tls_port)
    assert "UNKNOWN_CA" in how
    with pytest.raises(ProbeConnectError):
        MqttProbe("localhost", cloud_broker.tls_port, tls=_ctx(pki, stranger)).connect(5)
    assert "certificate verify failed" in cloud_broker.log_text()


def test_cloud_refuses_tls12(cloud_broker: Mosquitto, pki: TestPki) -> None:
    ctx = _ctx(pki, pki.client(), maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
        _raw_connect(ctx, cloud_broker.tls_port)
    with pytest.raises(ProbeConnectError, match="PROTOCOL_VERSION"):
        MqttProbe("localhost", cloud_broker.tls_port, tls=ctx).connect(timeout=5)


def test_cloud_refuses_plain_mqtt(cloud_broker: Mosquitto) -> None:
    _refusal(None, cloud_broker.tls_port)
    with pytest.raises(ProbeConnectError):
        MqttProbe("127.0.0.1", cloud_broker.tls_port).connect(timeout=3)


def test_cloud_server_cert_names_localhost_and_loopback_ip(
    cloud_broker: Mosquitto, pki: TestPki
) -> None:
    client = pki.client()
    assert _raw_connect(_ctx(pki, client), cloud_broker.tls_port, "localhost") == CONNACK_OK
    assert _raw_connect(_ctx(pki, client), cloud_broker.tls_port, "127.0.0.1") == CONNACK_OK
    with pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname mismatch"):
        _raw_connect(_ctx(pki, client), cloud_broker.tls_port, "cloud.example.com")


def test_cloud_config_is_tls13_client_cert_only(cloud_broker: Mosquitto) -> None:
    lines = cloud_broker.conf_path.read_text().splitlines()
    for line in (
        "tls_version tlsv1.3",
        "require_certificate true",
        "use_identity_as_username true",
        "allow_anonymous false",
        "max_queued_messages 0",
    ):
        assert line in lines
    with pytest.raises(RuntimeError, match="no plain listener"):
        _ = cloud_broker.port


# -- brokers with other certificates (factory) --------------------------------


def test_factory_cloud_with_expired_server_cert(
    mosquitto_factory: MosquittoFactory, pki: TestPki
) -> None:
    tls = TlsListener.for_server(pki.server(expired=True), client_ca=pki.ca.cert_path)
    broker = mosquitto_factory(plain=False, tls=tls, name="expired")
    client = pki.client()
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        _raw_connect(_ctx(pki, client), broker.tls_port)
    # The broker itself works: a client that does not check the chain gets in.
    lax = client_tls_context(None, client.cert_path, client.key_path, check_hostname=False)
    lax.verify_mode = ssl.CERT_NONE
    assert _raw_connect(lax, broker.tls_port) == CONNACK_OK


def test_factory_cloud_with_server_cert_from_other_ca(
    mosquitto_factory: MosquittoFactory, pki: TestPki
) -> None:
    tls = TlsListener.for_server(pki.server(issuer=pki.other_ca), client_ca=pki.ca.cert_path)
    broker = mosquitto_factory(plain=False, tls=tls, name="stranger")
    client = pki.client()
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _raw_connect(_ctx(pki, client), broker.tls_port)
    trusting_other = client_tls_context(pki.other_ca.cert_path, client.cert_path, client.key_path)
    assert _raw_connect(trusting_other, broker.tls_port) == CONNACK_OK


def test_factory_broker_with_both_listeners_still_demands_certs_on_tls(
    mosquitto_factory: MosquittoFactory, pki: TestPki
) -> None:
    # allow_anonymous is global in mosquitto 2.0; the plain listener needs it
    # true, and the TLS listener must still refuse a client without a cert.
    tls = TlsListener.for_server(pki.localhost_server, client_ca=pki.ca.cert_path)
    broker = mosquitto_factory(plain=True, tls=tls, name="both")
    with MqttProbe(broker.host, broker.port) as plain:
        assert plain.connected
    assert "CERTIFICATE_REQUIRED" in _refusal(_ctx(pki), broker.tls_port)
    assert _raw_connect(_ctx(pki, pki.client()), broker.tls_port) == CONNACK_OK


def test_factory_stops_its_brokers(mosquitto_factory: MosquittoFactory) -> None:
    broker = mosquitto_factory(name="short")
    broker.stop(graceful=False)
    assert not broker.is_running
    broker.stop()  # idempotent

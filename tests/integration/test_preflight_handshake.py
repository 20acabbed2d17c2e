"""connect's and doctor's cloud check: the TLS handshake as the device, and no MQTT at all.

`check_handshake` must see a refusal of the device certificate (TLS 1.3
sends it after our side of the handshake is over) and must never send a
CONNECT: a CONNECT with the device's client id would log into the bridge's
persistent session on the cloud.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

from edgeagent import errors
from edgeagent.bridge.probe import check_handshake
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.file_signer import FileSigner
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors
from tests.support.mosquitto import Mosquitto, MosquittoFactory, TlsListener
from tests.support.pki import TestPki
from tests.support.ports import LOOPBACK

pytestmark = pytest.mark.integration


def _endpoint(pki: TestPki, port: int, cn: str = "device-1") -> Endpoint:
    device = pki.client(cn)
    signer = FileSigner(device.key_path)
    tls = TlsClientContext(
        signer, device.cert_path.read_text(), load_trust_anchors(pki.ca.cert_path)
    )
    return Endpoint("c8y", "localhost", port, cn, tls=tls, connect_timeout=10)


@pytest.mark.parametrize("version", ["tlsv1.3", "tlsv1.2"])
def test_an_accepted_device_passes_without_a_connect(
    version: str, mosquitto_factory: MosquittoFactory, pki: TestPki
) -> None:
    if version == "tlsv1.2":
        listener = TlsListener.tls12_only(pki.localhost_server, client_ca=pki.ca.cert_path)
    else:
        listener = TlsListener.for_server(pki.localhost_server, client_ca=pki.ca.cert_path)
    cloud = mosquitto_factory(plain=False, tls=listener, name="cloud")
    result = check_handshake(_endpoint(pki, cloud.tls_port))
    assert result.seconds > 0
    # mosquitto (OpenSSL) sends TLS 1.3 session tickets once it took the certificate.
    assert result.accepted
    # No CONNECT reached the broker: it never saw a client id.
    assert "device-1" not in cloud.log_text(), cloud.log_text()


@pytest.mark.parametrize("version", ["tlsv1.3", "tlsv1.2"])
def test_a_refused_device_certificate_is_56_before_any_mqtt(
    version: str, mosquitto_factory: MosquittoFactory, pki: TestPki
) -> None:
    if version == "tlsv1.2":
        listener = TlsListener.tls12_only(pki.localhost_server, client_ca=pki.other_ca.cert_path)
    else:
        listener = TlsListener.for_server(pki.localhost_server, client_ca=pki.other_ca.cert_path)
    stranger = mosquitto_factory(plain=False, tls=listener, name="stranger")
    with pytest.raises(errors.DeviceCertificateRefused) as refused:
        check_handshake(_endpoint(pki, stranger.tls_port))
    assert "does not trust the device certificate" in refused.value.cause
    assert "pipe" not in refused.value.cause.lower()


def test_nothing_listening_is_unreachable(pki: TestPki, cloud_broker: Mosquitto) -> None:
    endpoint = _endpoint(pki, cloud_broker.tls_port)
    cloud_broker.stop()
    with pytest.raises(errors.BrokerUnreachable):
        check_handshake(endpoint)


def test_a_server_without_session_tickets_is_not_taken_for_a_refusal(pki: TestPki) -> None:
    """No ticket and no alert within the wait: passed, as not (yet) refused."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.num_tickets = 0
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(pki.ca.cert_path)
    server = pki.localhost_server
    context.load_cert_chain(server.cert_path, server.key_path)
    listener = socket.create_server((LOOPBACK, 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True):
            done.wait(10)  # says nothing after the handshake

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        endpoint = _endpoint(pki, listener.getsockname()[1])
        started = time.monotonic()
        result = check_handshake(endpoint, accept_wait=0.5)
        assert not result.accepted
        assert 0.5 <= time.monotonic() - started < 5
    finally:
        done.set()
        thread.join(5)
        listener.close()

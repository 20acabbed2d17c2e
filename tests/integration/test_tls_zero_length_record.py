"""A zero-length application-data record (legal: RFC 8446 section 5.1, RFC 5246
section 6.2.1) is not the end of the connection, over TLS 1.3 and TLS 1.2,
with the socket blocking (as during CONNACK) and non-blocking (as in the
bridge's loop).

The server is tlslite-ng's own, after a real handshake: OpenSSL (Python's ssl,
mosquitto) never sends an empty record, while tlslite's record layer sends
one when given an empty ApplicationData message.
"""

from __future__ import annotations

import select
import socket
import threading

import pytest

# Submodules, not `from tlslite import ...`: edgeagent.tls registers the package
# without its __init__ (edgeagent/tls/__init__.py).
from tlslite.handshakesettings import HandshakeSettings
from tlslite.messages import ApplicationData
from tlslite.tlsconnection import TLSConnection
from tlslite.utils.keyfactory import parsePEMKey
from tlslite.x509certchain import X509CertChain

from edgeagent.signing.file_signer import FileSigner
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.socket import TlsSocket
from edgeagent.tls.verify import load_trust_anchors
from tests.support.pki import ServerCredentials, TestPki
from tests.support.ports import LOOPBACK

pytestmark = pytest.mark.integration

VERSIONS = {"1.3": (3, 4), "1.2": (3, 3)}


def _serve(listener: socket.socket, server: ServerCredentials, version: str) -> None:
    conn, _ = listener.accept()
    tls = TLSConnection(conn)
    settings = HandshakeSettings()
    settings.maxVersion = VERSIONS[version]
    chain = X509CertChain()
    chain.parsePemList(server.cert_path.read_text())
    key = parsePEMKey(server.key_path.read_text(), private=True)
    try:
        tls.handshakeServer(certChain=chain, privateKey=key, settings=settings)
        for _ in tls._sendMsg(ApplicationData().create(bytearray()), randomizeFirstBlock=False):
            pass
        tls.write(b"after the empty record")
        tls.read(1)  # until the client closes
    except Exception:
        pass
    finally:
        conn.close()


def _read_all(wrapped: TlsSocket, blocking: bool) -> bytes:
    """What the client reads up to the first data (or the end, b"")."""
    if blocking:
        return wrapped.recv(100)
    wrapped.setblocking(False)
    for _ in range(50):
        readable, _, _ = select.select([wrapped], [], [], 5)
        assert readable, "nothing arrived within 5 s"
        try:
            return wrapped.recv(100)
        except BlockingIOError:
            continue  # the empty record alone: nothing to hand out yet
    raise AssertionError("no data after 50 wake-ups")


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "non-blocking"])
@pytest.mark.parametrize("version", list(VERSIONS))
def test_a_zero_length_record_is_not_the_end(version: str, blocking: bool, pki: TestPki) -> None:
    server = pki.ca.issue_server(["localhost"], key_type="rsa-2048")
    client = pki.client("device-zero")
    tls = TlsClientContext(
        FileSigner(client.key_path),
        client.cert_path.read_text(),
        load_trust_anchors(pki.ca.cert_path),
    )
    with socket.create_server((LOOPBACK, 0)) as listener:
        thread = threading.Thread(target=_serve, args=(listener, server, version), daemon=True)
        thread.start()
        sock = socket.create_connection(listener.getsockname(), timeout=10)
        wrapped = tls.wrap_socket(sock, server_hostname="localhost")
        try:
            wrapped.do_handshake()
            assert tls.last_handshake.version == f"TLS {version}"
            assert _read_all(wrapped, blocking) == b"after the empty record"
        finally:
            wrapped.close()
            thread.join(10)

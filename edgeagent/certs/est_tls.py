"""HTTPS with TLS client authentication by the device key: our TLS stack under http.client.

    tls = TlsClientContext(signer, certificate.pem, anchors)
    server = EstServer(host, port, roots, connection=client_cert_connection(tls))
    server.enroll("simplereenroll", csr_der, None)

Python's ``ssl`` cannot sign a CertificateVerify with a key on a token, so
the generic EST re-enrolment (RFC 7030 3.3.2: the client authenticates with
its current certificate) runs over :class:`edgeagent.tls.client.TlsClientContext`
(tlslite-ng, the token signs, ``cryptography`` verifies the server's chain and
name). ``http.client`` does the HTTP/1.1 on top: one request, bounded answer
(the EST client reads at most ``MAX_ANSWER`` bytes), connection closed after.
"""

from __future__ import annotations

import http.client
import io
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.socket import TlsSocket

if TYPE_CHECKING:
    from edgeagent.certs.est import EstServer


class _Reader(io.RawIOBase):
    def __init__(self, tls: TlsSocket) -> None:
        self._tls = tls

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._tls.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Stream:
    """The little of a socket http.client uses: sendall, makefile, close."""

    def __init__(self, tls: TlsSocket) -> None:
        self._tls = tls

    def sendall(self, data: bytes) -> None:
        self._tls.send(data)
        self._tls.pending()  # sends what was gathered, blocking (bounded)

    def makefile(self, mode: str, *_args: object, **_kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_Reader(self._tls))

    def close(self) -> None:
        self._tls.close()


class ClientCertHttps(http.client.HTTPConnection):
    """An HTTPS connection whose TLS is ours: the token signs, the server is verified."""

    default_port = 443

    def __init__(self, host: str, port: int, tls: TlsClientContext, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._tls = tls

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        try:
            wrapped = self._tls.wrap_socket(raw, server_hostname=self.host)
            wrapped.do_handshake()
        except BaseException:
            raw.close()
            raise
        self.sock = _Stream(wrapped)


def client_cert_connection(tls: TlsClientContext) -> Callable[[EstServer], ClientCertHttps]:
    """An ``EstServer.connection`` that authenticates with ``tls``'s certificate and key."""

    def connect(server: EstServer) -> ClientCertHttps:
        return ClientCertHttps(server.host, server.port, tls, server.timeout)

    return connect

"""An EST client (RFC 7030): a CSR in, the CA's certificates out, over verified HTTPS.

    server = EstServer("example.cumulocity.com", 443, roots=Path("/etc/ssl/certs"))
    answer = server.enroll("simpleenroll", csr_der, BasicAuth("device-042", password))
    answer.certificates[0]          # the device certificate (leaf first)

One request per connection, over Python's ``ssl`` with a server-auth-only
context: the server's chain and host name are checked against ``roots``
(``<cloud>.root_cert_path``), TLS 1.2 at least. The exchange:

    POST /.well-known/est/simpleenroll HTTP/1.1
    Content-Type: application/pkcs10
    Content-Transfer-Encoding: base64
    Authorization: Basic <device id:one-time password> | Bearer <token>

    <base64 of the CSR's DER>

    -> 200, Content-Type: application/pkcs7-mime; smime-type=certs-only,
       the PKCS#7 certs-only structure: base64 DER (RFC 7030), raw DER or PEM
    -> 202 (+ Retry-After) or 401: not registered yet (``EstPending``): ask again
    -> anything else: refused (``EnrolmentRefused``, the server's text quoted)

Cumulocity answers 401 until the device is registered with this one-time
password (thin-edge retries on it too), so 401 counts as "not yet" for the
caller to retry; the caller bounds the wait.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from edgeagent.errors import (
    EnrolmentRefused,
    ServerCertificateExpired,
    ServerCertificateUntrusted,
    ServerHostnameMismatch,
    TlsError,
)
from edgeagent.tls.verify import load_trust_anchors

EST_PATH = "/.well-known/est"
MAX_ANSWER = 1 << 20
"""An EST answer is a few certificates: more than 1 MiB is not one."""
PENDING_STATUSES = (202, 401)


@dataclass(frozen=True)
class BasicAuth:
    """HTTP Basic: the device id and its one-time password (never printed: no repr)."""

    user: str
    password: str

    def header(self) -> str:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return f"Basic {token}"

    def __repr__(self) -> str:
        return f"BasicAuth({self.user!r}, <password>)"


@dataclass(frozen=True)
class BearerAuth:
    """HTTP Bearer: a token the cloud issued (Cumulocity's JWT over MQTT)."""

    token: str

    def header(self) -> str:
        return f"Bearer {self.token}"

    def __repr__(self) -> str:
        return "BearerAuth(<token>)"


Auth = BasicAuth | BearerAuth | None


@dataclass(frozen=True)
class EstAnswer:
    certificates: list[x509.Certificate]
    """Leaf first: the certificate whose key is the CSR's, then the rest as sent."""
    status: int
    content_type: str


class EstPending(Exception):
    """The server does not know the device yet (202 or 401): try again later."""

    def __init__(self, status: int, retry_after: float | None, text: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after
        self.text = text


def csr_body(csr_der: bytes) -> bytes:
    """RFC 7030 4.2.1: the DER, base64, in lines of 64."""
    encoded = base64.b64encode(csr_der)
    return b"\r\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64)) + b"\r\n"


def parse_certs_only(body: bytes) -> list[x509.Certificate]:
    """The certificates of a PKCS#7 certs-only answer: base64 DER, raw DER or PEM."""
    stripped = body.strip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            return pkcs7.load_pem_pkcs7_certificates(stripped)
        if stripped[:1] == b"\x30":
            return pkcs7.load_der_pkcs7_certificates(stripped)
        der = base64.b64decode(b"".join(stripped.split()), validate=True)
        return pkcs7.load_der_pkcs7_certificates(der)
    except (ValueError, binascii.Error) as error:
        raise EnrolmentRefused(
            "the EST server's answer is not a PKCS#7 certs-only structure",
            "check that the URL names an EST service (RFC 7030)",
        ) from error


def leaf_first(certificates: list[x509.Certificate], public_der: bytes) -> list[x509.Certificate]:
    """The certificate for our key first; refuse an answer without one."""

    def spki(cert: x509.Certificate) -> bytes:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    ours = [c for c in certificates if spki(c) == public_der]
    if not ours:
        raise EnrolmentRefused(
            "the EST server answered with no certificate for the device key",
            "check the EST server's CA configuration",
        )
    return [ours[0], *[c for c in certificates if c is not ours[0]]]


def _tls_error(error: ssl.SSLCertVerificationError, host: str, roots: Path) -> TlsError:
    text = error.verify_message or str(error)
    fix = f"check the EST server and its CA; roots: {roots}"
    if error.verify_code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH
        return ServerHostnameMismatch(f"the EST server's certificate is not for {host}", fix)
    if error.verify_code in (9, 10):  # not yet valid / expired
        return ServerCertificateExpired(f"the EST server's certificate: {text}", fix)
    return ServerCertificateUntrusted(
        f"the EST server {host} is not trusted: {text}",
        f"put its root CA in {roots} (the cloud's root_cert_path)",
    )


@dataclass(frozen=True)
class EstServer:
    """An EST service at https://host:port/.well-known/est (or ``path``)."""

    host: str
    port: int
    roots: Path
    path: str = EST_PATH
    timeout: float = 30.0
    connection: Callable[[EstServer], http.client.HTTPConnection] | None = None
    """How to reach it: default, Python's ``ssl`` (server auth only); for TLS client
    authentication by the device key, :func:`edgeagent.certs.est_tls.client_cert_connection`."""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}{self.path}"

    def ssl_context(self) -> ssl.SSLContext:
        anchors = load_trust_anchors(self.roots)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname, CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        cadata = "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in anchors)
        context.load_verify_locations(cadata=cadata)
        return context

    def _connection(self) -> http.client.HTTPConnection:
        if self.connection is not None:
            return self.connection(self)
        return http.client.HTTPSConnection(
            self.host, self.port, timeout=self.timeout, context=self.ssl_context()
        )

    def enroll(self, operation: str, csr_der: bytes, auth: Auth) -> EstAnswer:
        """POST the CSR to ``operation`` (simpleenroll / simplereenroll); the certificates."""
        headers = {
            "Content-Type": "application/pkcs10",
            "Content-Transfer-Encoding": "base64",
            "Accept": "application/pkcs7-mime",
        }
        if auth is not None:
            headers["Authorization"] = auth.header()
        connection = self._connection()
        try:
            connection.request("POST", f"{self.path}/{operation}", csr_body(csr_der), headers)
            response = connection.getresponse()
            body = response.read(MAX_ANSWER + 1)
        except ssl.SSLCertVerificationError as error:
            raise _tls_error(error, self.host, self.roots) from error
        except (OSError, http.client.HTTPException) as error:
            raise EnrolmentRefused(
                f"cannot reach the EST server at {self.url}: {error}",
                "check the host name, the port and the network (c8y.http for Cumulocity)",
            ) from error
        finally:
            connection.close()
        content_type = response.getheader("Content-Type", "")
        if len(body) > MAX_ANSWER:
            raise EnrolmentRefused(f"the EST server's answer is over {MAX_ANSWER} bytes")
        if response.status in PENDING_STATUSES:
            raise EstPending(response.status, _retry_after(response), _text(body))
        if response.status != 200:
            raise EnrolmentRefused(
                f"the EST server refused {operation}: HTTP {response.status} "
                f"{response.reason}: {_text(body)}",
                _fix_for(response.status),
            )
        return EstAnswer(parse_certs_only(body), response.status, content_type)


def _retry_after(response: http.client.HTTPResponse) -> float | None:
    value = response.getheader("Retry-After")
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def _text(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace").strip().replace("\n", " ")
    return text or "(no text)"


def _fix_for(status: int) -> str:
    if status == 403:
        return "the server does not allow this device to enrol: check its registration"
    if status == 404:
        return "no EST service at that URL: check c8y.http (or --est-url)"
    return "see the server's text; ask its administrator"

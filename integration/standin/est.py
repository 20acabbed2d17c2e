"""A stand-in EST server (RFC 7030) that answers like Cumulocity's certificate authority.

    with EstStandin(ca_cert, ca_key, server_cert, server_key, client_ca=ca_cert) as est:
        est.register("device-042", "one-time password")   # what the user does in the UI
        est.not_yet = 3           # answer "not registered yet" (401) three times first
        est.tokens.add(jwt)       # bearer tokens simplereenroll accepts (c8y's JWT)
        ...  POST https://127.0.0.1:<est.port>/.well-known/est/simpleenroll
        est.exchanges             # what was asked and answered, in order

HTTPS with Python's ``ssl`` (TLS 1.2+). The operations:

- ``simpleenroll``: HTTP Basic ``device id : one-time password``. 401 while
  the device is not registered (or ``not_yet`` is above 0), 401 for a wrong
  password; the password is used up by a successful enrolment, as
  Cumulocity's is.
- ``simplereenroll``: ``Authorization: Bearer <one of tokens>`` (Cumulocity),
  or a TLS client certificate issued by ``client_ca`` (generic EST; asked
  for, not required, so Basic and Bearer work without one). The
  CSR's CN must be the authenticated device's.

The CSR body is base64 DER (RFC 7030) or PEM; its signature is checked. The
answer is ``application/pkcs7-mime; smime-type=certs-only``, base64 of the
DER PKCS#7 built by ``cryptography`` (``serialize_certificates``), holding
the new certificate signed by the CA, valid ``validity`` from now.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import http.server
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Exchange:
    """One request as the server saw it, and its answer."""

    method: str
    path: str
    auth: str
    """'basic', 'bearer', 'client-certificate' or 'none' (never the secret itself)."""
    content_type: str
    status: int
    answer_type: str


def _common_name(name: x509.Name) -> str | None:
    names = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def load_csr(body: bytes) -> x509.CertificateSigningRequest:
    """Base64 DER (RFC 7030 4.2.1) or PEM (what thin-edge sends)."""
    text = body.strip()
    if text.startswith(b"-----BEGIN"):
        return x509.load_pem_x509_csr(text)
    return x509.load_der_x509_csr(base64.b64decode(b"".join(text.split()), validate=True))


class EstStandin:
    """The server; a context manager that serves on a free loopback port in a thread."""

    def __init__(
        self,
        ca_cert_path: Path,
        ca_key_path: Path,
        server_cert_path: Path,
        server_key_path: Path,
        *,
        host: str = "127.0.0.1",
        client_ca: Path | None = None,
        validity: datetime.timedelta = datetime.timedelta(days=365),
    ) -> None:
        self.ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        self.ca_key = key
        self.validity = validity
        self.not_yet = 0
        self.registered: dict[str, str] = {}
        self.tokens: set[str] = set()
        self.client_ca = client_ca
        self.exchanges: list[Exchange] = []
        self.issued: list[x509.Certificate] = []
        self._lock = threading.Lock()
        self._server_files = (server_cert_path, server_key_path)
        self._httpd = http.server.ThreadingHTTPServer((host, 0), _Handler)
        self._httpd.standin = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def address(self) -> str:
        """host:port, as c8y.http takes it."""
        return f"{self.host}:{self.port}"

    def register(self, device_id: str, password: str) -> None:
        with self._lock:
            self.registered[device_id] = password

    def start(self) -> Self:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(*self._server_files)
        if self.client_ca is not None:
            context.load_verify_locations(cafile=str(self.client_ca))
            context.verify_mode = ssl.CERT_OPTIONAL
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="est-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what the handler asks ------------------------------------------------------------

    def enroll_basic(self, user: str, password: str) -> str | None:
        """The device id if this Basic login may enrol now; None: 401."""
        with self._lock:
            if self.not_yet > 0:
                self.not_yet -= 1
                return None
            if self.registered.get(user) != password:
                return None
            return user

    def used(self, device_id: str) -> None:
        with self._lock:
            self.registered.pop(device_id, None)

    def issue(self, request: x509.CertificateSigningRequest) -> bytes:
        """The PKCS#7 certs-only DER for a certificate for the CSR's key and CN."""
        public = request.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(request.subject)
            .issuer_name(self.ca_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + self.validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        with self._lock:
            self.issued.append(cert)
        return pkcs7.serialize_certificates([cert], serialization.Encoding.DER)

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "est-standin"
    protocol_version = "HTTP/1.1"

    @property
    def standin(self) -> EstStandin:
        found: EstStandin = self.server.standin  # type: ignore[attr-defined]
        return found

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads `exchanges`; no noise on stderr

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(min(length, MAX_BODY))
        operation = self.path.rsplit("/", 1)[-1]
        auth_kind, device = self._authenticate(operation)
        status, answer, answer_type = self._answer(operation, device, body)
        self.standin.record(
            Exchange(
                "POST",
                self.path,
                auth_kind,
                self.headers.get("Content-Type", ""),
                status,
                answer_type,
            )
        )
        self.send_response(status)
        self.send_header("Content-Type", answer_type)
        if answer_type == CERTS_ONLY:
            self.send_header("Content-Transfer-Encoding", "base64")
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="est"')
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _authenticate(self, operation: str) -> tuple[str, str | None]:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme == "Basic" and operation == "simpleenroll":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return "basic", None
            return "basic", self.standin.enroll_basic(user, password)
        if scheme == "Bearer" and operation == "simplereenroll":
            return "bearer", "*" if value in self.standin.tokens else None
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        if peer and operation == "simplereenroll":
            names = [
                str(item[1])
                for rdn in peer.get("subject", ())
                for item in rdn
                if isinstance(item, tuple) and item[0] == "commonName"
            ]
            return "client-certificate", names[0] if names else None
        return (scheme.lower() or "none"), None

    def _answer(self, operation: str, device: str | None, body: bytes) -> tuple[int, bytes, str]:
        if operation not in ("simpleenroll", "simplereenroll"):
            return 404, b"no such EST operation\n", "text/plain"
        if device is None:
            return 401, b"not registered, or wrong credentials\n", "text/plain"
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/pkcs10":
            return 415, b"expected application/pkcs10\n", "text/plain"
        try:
            request = load_csr(body)
        except (ValueError, binascii.Error):
            return 400, b"not a PKCS#10 CSR\n", "text/plain"
        if not request.is_signature_valid:
            return 400, b"the CSR's signature does not verify\n", "text/plain"
        common_name = _common_name(request.subject)
        if device != "*" and common_name != device:
            return 403, f"the CSR's CN is not {device}\n".encode(), "text/plain"
        answer = base64.encodebytes(self.standin.issue(request))
        if operation == "simpleenroll":
            self.standin.used(device)
        return 200, answer, CERTS_ONLY

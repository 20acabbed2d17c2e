"""tlslite-ng's TLS connection with its public-key work done by ``cryptography``.

tlslite does ECDHE and checks the server's CertificateVerify with
pure-Python elliptic-curve code (~9 ms of a ~17 ms handshake). This subclass
routes both through OpenSSL, and it verifies the server's chain and host name
the moment the server's Certificate arrives: before we send our own
certificate or sign anything, so an impostor learns nothing from us.

Hooks of tlslite 0.8.2 overridden here (pinned in pyproject.toml): the
``_getKEX`` factory and ``_clientGetKeyFromChain`` (both versions),
``_clientGetServerHello`` (downgrade sentinel, minimum version, TLS 1.2
extended master secret and renegotiation_info, with our own errors),
``_clientKeyExchange`` (the whole TLS 1.2 key exchange, see
:mod:`edgeagent.tls.tls12`) and ``_getNextRecord`` (a TLS 1.2 HelloRequest
ends the connection). The certificates the server sends are kept as bytes
(``_ReceivedX509``):
tlslite would parse each with its own pure-Python ASN.1 code and python-ecdsa
(~60 µs a certificate, on input from the network) before we parse it with
cryptography anyway.

Over 400 lines on purpose: every override of tlslite's internals stays in
this one class, so a tlslite upgrade is checked against one file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from tlslite import messages as tls_messages
from tlslite.constants import (
    TLS_1_3_HRR,
    AlertDescription,
    ContentType,
    ExtensionType,
    HandshakeType,
)
from tlslite.errors import TLSError, TLSIllegalParameterException
from tlslite.tlsconnection import TLSConnection
from tlslite.x509 import X509

from edgeagent.errors import (
    AgentError,
    ServerCertificateUntrusted,
    TlsDowngradeDetected,
    TlsHandshakeFailed,
    TlsVersionRefused,
)
from edgeagent.tls.aead import install_fast_aead
from edgeagent.tls.kex import exchange_for
from edgeagent.tls.tls12 import TLS12_SUITES, client_key_exchange

ChainCheck = Callable[[list[x509.Certificate]], None]

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}

# tlslite names curves as python-ecdsa does.
_CURVE_NAMES = {"secp256r1": "NIST256p", "secp384r1": "NIST384p", "secp521r1": "NIST521p"}
# TLS 1.3 signature schemes exist for these curves only (RFC 8446 4.2.3).
_TLS13_CURVE_HASHES = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}


class _ServerKey:
    """The server's public key, with the verify calls tlslite makes."""

    def __init__(self, key: Any) -> None:
        self._key = key
        # tlslite compares an ECDSA scheme's hash with the curve's; None for
        # other keys makes that a clean "curve mismatch" alert.
        self.curve_name: str | None = None
        if isinstance(key, ec.EllipticCurvePublicKey):
            self.curve_name = _CURVE_NAMES.get(key.curve.name, key.curve.name)
            self.key_type = "ecdsa"
        elif isinstance(key, rsa.RSAPublicKey):
            self.key_type = "rsa"
            self.n = key.public_numbers().n
        else:
            self.key_type = type(key).__name__

    @property
    def public(self) -> Any:
        """The ``cryptography`` public key."""
        return self._key

    def __len__(self) -> int:
        return int(getattr(self._key, "key_size", 0))

    def verify(
        self,
        signature: bytes,
        digest: bytes,
        pad: str | None = None,
        hash_name: str = "sha256",
        salt_len: int | None = None,
    ) -> bool:
        algorithm = _HASHES.get(hash_name)
        if algorithm is None:
            return False
        prehashed = utils.Prehashed(algorithm)
        try:
            if isinstance(self._key, ec.EllipticCurvePublicKey):
                # TLS 1.3 ties the scheme to the key: ecdsa_secp256r1_sha256 and
                # so on, never an RSA scheme's padding (RFC 8446 4.4.3).
                if pad is not None or _TLS13_CURVE_HASHES.get(self._key.curve.name) != hash_name:
                    return False
                self._key.verify(bytes(signature), bytes(digest), ec.ECDSA(prehashed))
            elif isinstance(self._key, rsa.RSAPublicKey) and pad == "pss":
                pss = padding.PSS(
                    mgf=padding.MGF1(algorithm),
                    salt_length=algorithm.digest_size if salt_len is None else salt_len,
                )
                self._key.verify(bytes(signature), bytes(digest), pss, prehashed)
            else:
                return False  # TLS 1.3 allows no other server signatures we offer
        except InvalidSignature:
            return False
        return True

    def hashAndVerify(self, signature: bytes, data: bytes, *_: Any) -> bool:
        if not isinstance(self._key, ed25519.Ed25519PublicKey):
            return False
        try:
            self._key.verify(bytes(signature), bytes(data))
        except InvalidSignature:
            return False
        return True


class AgentTLSConnection(TLSConnection):  # type: ignore[misc]
    """A tlslite client connection that checks the server first and computes fast."""

    def __init__(
        self,
        sock: Any,
        check_chain: ChainCheck,
        min_version: tuple[int, int] = (3, 3),
        cloud: str = "<cloud>",
    ) -> None:
        super().__init__(sock)
        install_fast_aead(self._recordLayer)
        self._check_chain = check_chain
        self._min_version = min_version
        self._cloud = cloud  # for the key a refusal's fix names
        self.server_chain_checked = False
        self.last_version: tuple[int, int] = (0, 0)  # the version before a shutdown
        self._hello_retried = False  # a HelloRetryRequest came: only TLS 1.3 may follow
        # The ClientHello's TLS 1.3 key shares, by group: a TLS 1.2 ECDHE on
        # the same group uses that ephemeral key instead of making another.
        self.client_key_shares: dict[int, Any] = {}

    @staticmethod
    def _getKEX(group: int, version: Any) -> Any:
        exchange = exchange_for(group)
        if exchange is not None:
            return exchange
        # Unreachable while the ClientHello offers only kex.GROUPS: refusing
        # is safer than falling back to tlslite's pure-Python arithmetic.
        raise TLSIllegalParameterException(f"key exchange group {group:#06x} was not offered")

    # -- TLS 1.2 and the version checks -------------------------------------------

    def _getMsg(
        self, expectedType: Any, secondaryType: Any = None, constructorType: Any = None
    ) -> Generator[Any, None, None]:
        # Every ServerHello is looked at here, before tlslite's own checks: it
        # refuses a TLS 1.1 answer as "too old" (or its suite as wrong) before
        # _clientGetServerHello could see the downgrade sentinel in it.
        for result in super()._getMsg(expectedType, secondaryType, constructorType):
            if isinstance(result, tls_messages.ServerHello):
                refusal = self._early_server_hello_refusal(result)
                if refusal is not None:
                    yield from self._refuse(*refusal)
            yield result

    def _early_server_hello_refusal(self, hello: Any) -> tuple[int, AgentError] | None:
        version = _chosen_version(hello)
        if bytes(hello.random) == bytes(TLS_1_3_HRR):
            self._hello_retried = True
            return None
        if version >= (3, 4):
            return None
        if self._hello_retried:
            # RFC 8446 4.1.4: the ServerHello must keep the HelloRetryRequest's version.
            return AlertDescription.illegal_parameter, TlsHandshakeFailed(
                f"the server asked for a TLS 1.3 retry, then answered with {version_text(version)}",
                "the cloud endpoint or something on the path is broken; nothing was signed",
            )
        return downgrade_refusal(hello, version)

    def _clientGetServerHello(
        self, settings: Any, session: Any, client_hello: Any
    ) -> Generator[Any, None, None]:
        for result in super()._clientGetServerHello(settings, session, client_hello):
            if result in (0, 1):
                yield result
            else:
                break
        server_hello = result
        shares = client_hello.getExtension(ExtensionType.key_share)
        self.client_key_shares = {e.group: e for e in shares.client_shares} if shares else {}
        refusal = server_hello_refusal(server_hello, self.version, self._min_version, self._cloud)
        if refusal is not None:
            description, error = refusal
            yield from self._refuse(description, error)
        yield server_hello

    def _clientKeyExchange(
        self,
        settings: Any,
        cipherSuite: int,
        clientCertChain: Any,
        privateKey: Any,
        certificateType: Any,
        tackExt: Any,
        clientRandom: bytes,
        serverRandom: bytes,
        keyExchange: Any,
    ) -> Generator[Any, None, None]:
        yield from client_key_exchange(
            self,
            settings,
            cipherSuite,
            clientCertChain,
            privateKey.signer,
            clientRandom,
            serverRandom,
        )

    def _getNextRecord(self) -> Generator[Any, None, None]:
        """tlslite's record reader, with a TLS 1.2 HelloRequest ending the connection.

        tlslite answers a HelloRequest with a no_renegotiation warning and
        carries on; we never renegotiate and take the request as the end.
        """
        for result in super()._getNextRecord():
            if result in (0, 1):
                yield result
                continue
            header, parser = result
            if (
                header.type == ContentType.handshake
                and parser.bytes[:1] == bytes([HandshakeType.hello_request])
                and self.version <= (3, 3)
            ):
                yield from self._sendError(
                    AlertDescription.unexpected_message,
                    "the server asked to renegotiate; this client never renegotiates",
                )
            yield result

    def _shutdown(self, resumable: bool) -> None:
        # tlslite forgets the version on shutdown; an error message needs it.
        if self.version != (0, 0):
            self.last_version = self.version
        super()._shutdown(resumable)

    def _refuse(self, description: int, error: AgentError) -> Generator[Any, None, None]:
        """Send a fatal alert, close, and raise our own ``error`` (not tlslite's)."""
        with contextlib.suppress(TLSError, OSError):
            yield from self._sendError(description, error.cause)
        raise error

    def _clientGetKeyFromChain(
        self, certificate: Any, settings: Any, tack_ext: Any = None
    ) -> Generator[Any, None, None]:
        presented = certificate.cert_chain
        if not presented or not presented.x509List:
            yield from self._sendError(
                AlertDescription.illegal_parameter, "the server sent no certificate"
            )
        try:
            chain = [x509.load_der_x509_certificate(bytes(c.bytes)) for c in presented.x509List]
        except ValueError as error:
            raise ServerCertificateUntrusted(
                f"the server sent a certificate that is not valid DER X.509: {error}",
                "the cloud endpoint's certificate is malformed, or this is not the cloud",
            ) from error
        self._check_chain(chain)  # raises our error: the handshake stops here
        self.server_chain_checked = True
        key = chain[0].public_key()
        refusal = server_key_refusal(key, settings)
        if refusal is not None:
            yield from self._sendError(AlertDescription.handshake_failure, refusal)
        yield _ServerKey(key), presented, None


# RFC 8446 4.1.3: a TLS 1.3 server that answers with TLS 1.2 (1.1 and older)
# ends its random with these bytes.
DOWNGRADE_SENTINELS = {
    bytes.fromhex("444f574e47524401"): "TLS 1.2",
    bytes.fromhex("444f574e47524400"): "TLS 1.1 or older",
}


def version_text(version: tuple[int, int]) -> str:
    """(3, 3) -> "TLS 1.2"."""
    if version[0] == 3 and version[1] >= 1:
        return f"TLS 1.{version[1] - 1}"
    return "SSL 3.0" if version == (3, 0) else f"version {version}"


def version_refusal(
    version: tuple[int, int], min_version: tuple[int, int], cloud: str = "<cloud>"
) -> TlsVersionRefused | None:
    """Our error for a server that chose a version below the minimum, or None."""
    if version >= min_version:
        return None
    return TlsVersionRefused(
        f"the server wants {version_text(version)}; the minimum is {version_text(min_version)}",
        "if this endpoint really offers no newer TLS, allow it with "
        f"`agent config set {cloud}.tls.min_version 1.2` (TLS 1.1 and older are never "
        "accepted)"
        if version == (3, 3)
        else "the cloud endpoint must offer TLS 1.2 or 1.3; TLS 1.1 and older are never accepted",
    )


def _chosen_version(hello: Any) -> tuple[int, int]:
    """The version a ServerHello chose: supported_versions (TLS 1.3), else its version field."""
    ext = hello.getExtension(ExtensionType.supported_versions)
    chosen = getattr(ext, "version", None) if ext is not None else None
    return tuple(chosen) if chosen else tuple(hello.server_version)


def downgrade_refusal(hello: Any, version: tuple[int, int]) -> tuple[int, AgentError] | None:
    """RFC 8446 4.1.3: a pre-1.3 answer whose random says the server speaks TLS 1.3."""
    sentinel = DOWNGRADE_SENTINELS.get(bytes(hello.random[-8:]))
    if version >= (3, 4) or sentinel is None:
        return None
    return AlertDescription.illegal_parameter, TlsDowngradeDetected(
        f"the server answered with {version_text(version)}, but its random says it "
        f"speaks TLS 1.3 ({sentinel} downgrade sentinel, RFC 8446 4.1.3): someone "
        "between us and the cloud removed TLS 1.3 from our offer",
        "do not trust this network path; the handshake was stopped before anything was signed",
    )


def server_hello_refusal(
    server_hello: Any,
    version: tuple[int, int],
    min_version: tuple[int, int],
    cloud: str = "<cloud>",
) -> tuple[int, AgentError] | None:
    """Why a ServerHello must end the handshake (alert, our error), or None.

    Called with the version the server chose. Checked here, not left to
    tlslite: its downgrade and minimum-version refusals are generic alerts,
    and it requires extended master secret of TLS 1.3 servers too (which
    never send it), so that has to stay off in its settings.
    """
    if version >= (3, 4):
        return None
    downgraded = downgrade_refusal(server_hello, version)
    if downgraded is not None:
        return downgraded
    refused = version_refusal(version, min_version, cloud)
    if refused is not None:
        return AlertDescription.protocol_version, refused
    if server_hello.cipher_suite not in TLS12_SUITES:
        return AlertDescription.handshake_failure, TlsHandshakeFailed(
            f"the server chose TLS 1.2 cipher suite {server_hello.cipher_suite:#06x}, "
            "which we did not offer"
        )
    if server_hello.getExtension(ExtensionType.extended_master_secret) is None:
        return AlertDescription.handshake_failure, TlsHandshakeFailed(
            "the server speaks TLS 1.2 without the extended master secret (RFC 7627), "
            "which leaves the session open to man-in-the-middle attacks (triple handshake)",
            "enable extended master secret on the cloud endpoint (every current TLS "
            "library has it on by default), or have it speak TLS 1.3",
        )
    renegotiation = server_hello.getExtension(ExtensionType.renegotiation_info)
    if renegotiation is not None and renegotiation.renegotiated_connection:
        return AlertDescription.handshake_failure, TlsHandshakeFailed(
            "the server's renegotiation_info on a first handshake is not empty (RFC 5746)"
        )
    return None


def server_key_refusal(key: Any, settings: Any) -> str | None:
    """Why the server's key is unfit for this handshake, or None (tlslite's own checks)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        hash_name = _TLS13_CURVE_HASHES.get(key.curve.name)
        if hash_name is None:
            return f"the server's key is on {key.curve.name}, which TLS 1.3 does not sign with"
        if hash_name not in settings.ecdsaSigHashes:
            return f"the server's key is on {key.curve.name}, whose hash we do not accept"
        return None
    if isinstance(key, rsa.RSAPublicKey):
        if not settings.minKeySize <= key.key_size <= settings.maxKeySize:
            return (
                f"the server's RSA key has {key.key_size} bits; accepted "
                f"{settings.minKeySize}..{settings.maxKeySize}"
            )
        return None
    if isinstance(key, ed25519.Ed25519PublicKey) and "Ed25519" in settings.more_sig_schemes:
        return None
    return f"the server's key is a {type(key).__name__}, which this client does not verify"


class _ReceivedX509(X509):  # type: ignore[misc]
    """A certificate as tlslite keeps it from a Certificate message: its bytes only."""

    def parseBinary(self, cert_bytes: bytes | bytearray) -> _ReceivedX509:
        self.bytes = bytearray(cert_bytes)
        return self


# Certificate messages build their X509 objects through this module-level name.
tls_messages.X509 = _ReceivedX509

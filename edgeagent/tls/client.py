"""The TLS client context paho uses to reach the cloud (TLS 1.3, or 1.2 if the server wants).

    context = TlsClientContext(signer, cert_chain_pem, anchors, min_version="1.2")
    mqtt_client.tls_set_context(context)     # paho calls wrap_socket()
    context.last_handshake.version           # "TLS 1.3" after a handshake

The ClientHello offers TLS 1.3 and 1.2 (ECDHE, AEAD suites only); the server
picks, and ``min_version`` "1.3" refuses a 1.2 answer with its own error. The
server's chain and host name are verified when its Certificate arrives,
before we sign anything; the CertificateVerify is signed through the Signer.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.verification import Store
from tlslite.constants import AlertDescription, CipherSuite, ECPointFormat
from tlslite.errors import (
    TLSAbruptCloseError,
    TLSError,
    TLSLocalAlert,
    TLSRemoteAlert,
)
from tlslite.handshakesettings import HandshakeSettings
from tlslite.tlsconnection import TLSConnection
from tlslite.x509certchain import X509CertChain

from edgeagent.errors import (
    AgentError,
    AlpnNotSelected,
    ServerCertificateUntrusted,
    TlsHandshakeFailed,
)
from edgeagent.signing.signer import Signer
from edgeagent.tls.aead import CIPHER_NAMES
from edgeagent.tls.connection import AgentTLSConnection, version_refusal, version_text
from edgeagent.tls.deadline import Watchdog
from edgeagent.tls.kex import GROUPS, group_name
from edgeagent.tls.refusal import closed_on_us, refusal_from_alert
from edgeagent.tls.signer_key import SignerKey
from edgeagent.tls.socket import TlsSocket
from edgeagent.tls.verify import verify_server_chain

# What a server's alert most likely means for the user, by alert name.
_ALERT_FIXES = {
    "bad_certificate": "the cloud rejected the device certificate: register it (or its CA) "
    "with the cloud, or check device.cert_path",
    "unknown_ca": "the cloud does not know the CA that issued the device certificate: "
    "upload that CA to the cloud",
    "certificate_required": "the cloud wants a device certificate: set device.cert_path",
    "certificate_expired": "the device certificate has expired: renew it",
    "decrypt_error": "the CertificateVerify signature did not verify: the key on the token "
    "is not the certificate's key",
    "protocol_version": "the cloud endpoint accepts neither TLS 1.3 nor TLS 1.2",
    "handshake_failure": "the cloud and the agent share no cipher suite (TLS 1.3, or TLS 1.2 "
    "ECDHE with AES-GCM or ChaCha20-Poly1305), key exchange group or signature scheme",
    "insufficient_security": "the cloud wants a cipher suite weaker than the agent accepts "
    "(TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305 at least)",
}


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


VERSIONS: dict[str, tuple[int, int]] = {"1.2": (3, 3), "1.3": (3, 4)}


def handshake_settings() -> HandshakeSettings:
    """What the ClientHello offers: TLS 1.3 and TLS 1.2, modern parts only.

    The same offer whatever ``min_version`` says: a server that answers 1.2
    when 1.2 is not allowed is refused after its ServerHello, so the error
    can name the version it wanted (``AgentTLSConnection``).
    """
    settings = HandshakeSettings()
    settings.minVersion = (3, 3)
    settings.maxVersion = (3, 4)
    settings.cipherNames = list(CIPHER_NAMES)
    # TLS 1.2: ECDHE key exchange only (no RSA key transport, no FFDHE),
    # AEAD ciphers only (no CBC, no HMAC record MACs).
    settings.keyExchangeNames = ["ecdhe_ecdsa", "ecdhe_rsa"]
    settings.macNames = ["aead"]
    # Signature schemes with SHA-256/384/512 only (no SHA-1, no SHA-224, no DSA).
    settings.ecdsaSigHashes = ["sha256", "sha384", "sha512"]
    settings.rsaSigHashes = ["sha256", "sha384", "sha512"]
    settings.rsaSchemes = ["pss", "pkcs1"]
    settings.dsaSigHashes = []
    settings.ec_point_formats = [ECPointFormat.uncompressed]
    # tlslite-ng 0.8.2 sends the client Certificate compressed even when the
    # server never offered compression; OpenSSL then aborts with
    # unexpected_message. Never compress.
    settings.certificate_compression_send = []
    # One X25519 share (OpenSSL's first choice): generating a second, unused
    # share costs time; a server that wants another group asks for it (HRR).
    settings.keyShares = ["x25519"]
    # Offer only what this client accepts and computes on OpenSSL: tlslite's
    # defaults also advertise TLS 1.0-1.2 in supported_versions (refused after
    # the ServerHello anyway), TLS 1.2-only extensions, a heartbeat, x448,
    # brainpool and FFDHE groups and Ed448/brainpool signatures (pure Python,
    # or not verifiable by `connection._ServerKey`), and pad the ClientHello
    # for old F5 load balancers (OpenSSL does not). Building and sending all
    # that cost ~0.4 ms of a ~5 ms handshake.
    settings.versions = [(3, 4), (3, 3)]
    settings.eccCurves = list(GROUPS)
    settings.dhGroups = []
    settings.more_sig_schemes = ["Ed25519"]
    settings.useEncryptThenMAC = False
    # RFC 7627, required of TLS 1.2 servers. Not tlslite's
    # requireExtendedMasterSecret: it demands the extension of TLS 1.3
    # ServerHellos too, which never carry it; the connection checks it.
    settings.useExtendedMasterSecret = True
    settings.requireExtendedMasterSecret = False
    settings.use_heartbeat_extension = False
    settings.usePaddingExtension = False
    return settings


@dataclass
class HandshakeTiming:
    """What the last handshake took and gave, for `agent connect`, doctor and benchmarks."""

    seconds: float = 0.0
    version: str = ""  # "TLS 1.3"
    cipher_suite: str = ""  # IANA name: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    group: str = ""  # the (EC)DHE group: "x25519", "secp256r1"

    def describe(self) -> str:
        """What doctor prints: ``TLS 1.2, TLS_ECDHE_..._SHA256 over x25519``."""
        text = f"{self.version}, {self.cipher_suite}"
        return f"{text} over {self.group}" if self.group else text


@dataclass
class TlsClientContext:
    """What paho's ``tls_set_context`` needs: ``wrap_socket`` and ``check_hostname``."""

    signer: Signer
    cert_chain_pem: str
    anchors: list[x509.Certificate]
    alpn: list[bytes] | None = None
    min_version: str = "1.2"  # "1.2" or "1.3": <cloud>.tls.min_version
    cloud: str = "<cloud>"  # the configuration section, for fixes ("c8y")
    # paho: the hostname is checked here, during the handshake, so paho must
    # not call ssl.match_hostname on our socket.
    check_hostname: bool = True
    last_handshake: HandshakeTiming = field(default_factory=HandshakeTiming)
    # The socket of the last wrap_socket: its alert names a refusal after the handshake.
    last_socket: TlsSocket | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.min_version not in VERSIONS:
            raise ValueError(
                f"min_version must be one of {list(VERSIONS)}, not {self.min_version!r}"
            )
        self._chain = X509CertChain()
        self._chain.parsePemList(self.cert_chain_pem)
        self._key = SignerKey(self.signer)
        self._store = Store(self.anchors)

    def wrap_socket(
        self,
        sock: socket.socket,
        server_hostname: str | None = None,
        do_handshake_on_connect: bool = False,
        **_ignored: object,
    ) -> TlsSocket:
        if not server_hostname:
            raise TlsHandshakeFailed(
                "no host name to verify the cloud's certificate against",
                "set the cloud's url to its host name",
            )
        host = server_hostname

        def handshake(conn: TLSConnection) -> None:
            started = time.perf_counter()
            # The socket's timeout (paho's connect timeout, or what is left of
            # the session's) bounds the whole handshake, not each read (deadline.py).
            budget = sock.gettimeout()
            if budget is None:
                self._handshake(conn, host)
            else:
                with Watchdog(sock, budget) as dog:
                    try:
                        self._handshake(conn, host)
                    except (AgentError, OSError) as error:
                        if not dog.fired:
                            raise
                        raise TlsHandshakeFailed(
                            f"{host} did not complete the TLS handshake within the "
                            f"connect timeout ({budget:.1f} s)",
                            "check that the port is the cloud's MQTT-over-TLS port and the "
                            "network path to it; a slow token (TPM) may need a longer "
                            "connect timeout",
                        ) from error
            self.last_handshake.seconds = time.perf_counter() - started
            self.last_handshake.version = version_text(conn.version)
            suite = conn.session.cipherSuite if conn.session else None
            self.last_handshake.cipher_suite = CipherSuite.ietfNames.get(suite, str(suite))
            curve = getattr(conn, "ecdhCurve", None)
            self.last_handshake.group = group_name(curve) if curve else ""

        # MQTT packets are small and latency-bound: without this, Nagle holds
        # CONNECT back until the server's delayed ACK of our last handshake
        # flight (~40-80 ms on Linux).
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = AgentTLSConnection(
            sock,
            lambda chain: verify_server_chain(
                chain, host, self._store, self.anchors, cloud=self.cloud
            ),
            VERSIONS[self.min_version],
            self.cloud,
        )
        wrapped = TlsSocket(sock, conn, handshake)
        self.last_socket = wrapped
        if do_handshake_on_connect:
            wrapped.do_handshake()
        return wrapped

    def _handshake(self, conn: AgentTLSConnection, host: str) -> None:
        def check_server(connection: AgentTLSConnection) -> None:
            # The chain was verified when it arrived (AgentTLSConnection); a
            # handshake that never showed one (resumption) is not accepted.
            if not connection.server_chain_checked:
                raise ServerCertificateUntrusted(
                    f"{host} completed the handshake without presenting a certificate",
                    "the cloud must authenticate with a certificate",
                )

        try:
            conn.handshakeClientCert(
                certChain=self._chain,
                privateKey=self._key,
                settings=handshake_settings(),
                checker=check_server,
                # RFC 6066: SNI carries host names only, never IP literals.
                serverName=None if _is_ip_literal(host) else host,
                alpn=self.alpn,
            )
            if self.alpn:
                chosen = conn.session.appProto if conn.session else None
                if chosen not in self.alpn:
                    wanted = ", ".join(p.decode() for p in self.alpn)
                    raise AlpnNotSelected(
                        f"{host} did not select the ALPN protocol {wanted} "
                        f"(it selected {chosen.decode() if chosen else 'none'})",
                        "the port is not the cloud's MQTT port: for AWS IoT Core use the "
                        "account's ATS endpoint on 443 or 8883, and a proxy that passes "
                        "ALPN through",
                    )
        except AgentError:
            raise
        except TLSRemoteAlert as alert:
            refused = refusal_from_alert(alert, host)
            if refused is not None:
                raise refused from alert
            name = AlertDescription.toRepr(alert.description) or str(alert.description)
            raise TlsHandshakeFailed(
                f"the cloud ({host}) ended the TLS handshake with alert {name!r}",
                _ALERT_FIXES.get(name, "see the cloud broker's log for why it refused"),
            ) from alert
        except TLSLocalAlert as alert:
            # tlslite refuses TLS 1.1 and older itself (its minVersion is 1.2).
            too_old = (
                version_refusal(conn.last_version, VERSIONS[self.min_version], self.cloud)
                if alert.description == AlertDescription.protocol_version
                else None
            )
            if too_old is not None:
                raise too_old from alert
            raise TlsHandshakeFailed(
                f"TLS handshake with {host} failed on our side: {alert}",
                "the cloud endpoint must speak TLS 1.3, or TLS 1.2 with ECDHE, an AEAD "
                "cipher and extended master secret",
            ) from alert
        except TLSAbruptCloseError as error:
            raise TlsHandshakeFailed(
                f"{host} closed the connection during the TLS handshake",
                "check that the port is the cloud's MQTT-over-TLS port and that it "
                "accepts TLS 1.3 or 1.2 with client certificates",
            ) from error
        except TimeoutError as error:
            raise TlsHandshakeFailed(
                f"{host} did not complete the TLS handshake in time",
                "check the network; a slow token (TPM) may need a longer connect timeout",
            ) from error
        except TLSError as error:
            raise TlsHandshakeFailed(f"TLS handshake with {host} failed: {error}") from error
        except ConnectionError as error:
            # A reset or broken pipe: the server closed on us (refusal.py says why).
            raise closed_on_us(conn, host, error) from error
        except OSError:
            raise
        except Exception as error:
            # tlslite can fail in ways it does not wrap (struct errors, asserts
            # on malformed input): a handshake failure, never a crash.
            raise TlsHandshakeFailed(
                f"TLS handshake with {host} failed: {type(error).__name__}: {error}"
            ) from error

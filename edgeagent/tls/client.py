"""The TLS 1.3 client context paho uses to reach the cloud.

    context = TlsClientContext(signer, cert_chain_pem, anchors)
    mqtt_client.tls_set_context(context)     # paho calls wrap_socket()

The handshake signs the CertificateVerify through the Signer, then verifies
the server's chain and hostname before paho may send its first MQTT byte.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.verification import Store
from tlslite.constants import AlertDescription
from tlslite.errors import (
    TLSAbruptCloseError,
    TLSError,
    TLSLocalAlert,
    TLSRemoteAlert,
)
from tlslite.handshakesettings import HandshakeSettings
from tlslite.tlsconnection import TLSConnection
from tlslite.x509certchain import X509CertChain

from edgeagent.errors import AgentError, ServerCertificateUntrusted, TlsHandshakeFailed
from edgeagent.signing.signer import Signer
from edgeagent.tls.aead import CIPHER_NAMES
from edgeagent.tls.connection import AgentTLSConnection
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
    "protocol_version": "the cloud endpoint does not accept TLS 1.3",
    "handshake_failure": "the cloud and the agent share no TLS 1.3 cipher suite or "
    "signature scheme",
}


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def handshake_settings() -> HandshakeSettings:
    settings = HandshakeSettings()
    settings.minVersion = (3, 4)
    settings.maxVersion = (3, 4)
    settings.cipherNames = list(CIPHER_NAMES)
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
    settings.versions = [(3, 4)]
    settings.eccCurves = ["x25519", "secp256r1", "secp384r1", "secp521r1"]
    settings.dhGroups = []
    settings.more_sig_schemes = ["Ed25519"]
    settings.useEncryptThenMAC = False
    settings.useExtendedMasterSecret = False
    settings.use_heartbeat_extension = False
    settings.usePaddingExtension = False
    return settings


@dataclass
class HandshakeTiming:
    """How long the last handshake took, for `agent connect` and benchmarks."""

    seconds: float = 0.0


@dataclass
class TlsClientContext:
    """What paho's ``tls_set_context`` needs: ``wrap_socket`` and ``check_hostname``."""

    signer: Signer
    cert_chain_pem: str
    anchors: list[x509.Certificate]
    alpn: list[bytes] | None = None
    # paho: the hostname is checked here, during the handshake, so paho must
    # not call ssl.match_hostname on our socket.
    check_hostname: bool = True
    last_handshake: HandshakeTiming = field(default_factory=HandshakeTiming)

    def __post_init__(self) -> None:
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
            self._handshake(conn, host)
            self.last_handshake.seconds = time.perf_counter() - started

        # MQTT packets are small and latency-bound: without this, Nagle holds
        # CONNECT back until the server's delayed ACK of our last handshake
        # flight (~40-80 ms on Linux).
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = AgentTLSConnection(sock, lambda chain: verify_server_chain(chain, host, self._store))
        wrapped = TlsSocket(sock, conn, handshake)
        if do_handshake_on_connect:
            wrapped.do_handshake()
        return wrapped

    def _handshake(self, conn: TLSConnection, host: str) -> None:
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
        except AgentError:
            raise
        except TLSRemoteAlert as alert:
            name = AlertDescription.toRepr(alert.description) or str(alert.description)
            raise TlsHandshakeFailed(
                f"the cloud ({host}) ended the TLS handshake with alert {name!r}",
                _ALERT_FIXES.get(name, "see the cloud broker's log for why it refused"),
            ) from alert
        except TLSLocalAlert as alert:
            raise TlsHandshakeFailed(
                f"TLS handshake with {host} failed on our side: {alert}",
                "the cloud endpoint may not speak TLS 1.3 as required",
            ) from alert
        except TLSAbruptCloseError as error:
            raise TlsHandshakeFailed(
                f"{host} closed the connection during the TLS handshake",
                "check that the port is the cloud's MQTT-over-TLS port and that it "
                "accepts TLS 1.3 with client certificates",
            ) from error
        except TimeoutError as error:
            raise TlsHandshakeFailed(
                f"{host} did not complete the TLS handshake in time",
                "check the network; a slow token (TPM) may need a longer connect timeout",
            ) from error
        except TLSError as error:
            raise TlsHandshakeFailed(f"TLS handshake with {host} failed: {error}") from error
        except OSError:
            raise
        except Exception as error:
            # tlslite can fail in ways it does not wrap (struct errors, asserts
            # on malformed input): a handshake failure, never a crash.
            raise TlsHandshakeFailed(
                f"TLS handshake with {host} failed: {type(error).__name__}: {error}"
            ) from error

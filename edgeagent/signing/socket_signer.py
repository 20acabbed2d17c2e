"""A Signer that asks the signing service (`agent p11-server`) over its Unix socket.

The agent never loads a PKCS#11 module nor sees the PIN in this mode. One
connection is kept and shared (requests are serialised); if the service
restarted in between, the request is sent once more on a new connection,
which is safe because signing has no side effects.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeagent import errors
from edgeagent.protocol import messages as m
from edgeagent.protocol.frame import FrameError, PeerClosed, read_frame, write_frame
from edgeagent.protocol.schemes import HashName, Padding, scheme_name
from edgeagent.signing.signer import PublicKey

# Slow tokens (a TPM) sign in hundreds of ms, sometimes seconds.
REQUEST_TIMEOUT = 60.0


class SocketSigner:
    cryptoki = True

    def __init__(self, socket_path: Path, key_uri: str | None) -> None:
        self._path = socket_path
        self._uri = key_uri
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None
        reply = self._request({"op": "public_key", "uri": key_uri})
        der = m.unb64(reply, "public_key")
        key = serialization.load_der_public_key(der)
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise errors.UnsupportedKeyType(f"the service's key is a {type(key).__name__}")
        self._public = key
        self._key_location = str(reply.get("uri") or key_uri or "")

    @property
    def location(self) -> str:
        return f"{self._key_location} via the signing service at {self._path}"

    def public_key(self) -> PublicKey:
        return self._public

    def sign_digest(self, digest: bytes, hash_name: HashName, padding: Padding) -> bytes:
        reply = self._request(
            {
                "op": "sign",
                "uri": self._uri,
                "scheme": scheme_name(hash_name, padding),
                "digest": m.b64(digest),
            }
        )
        return m.unb64(reply, "signature")

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    # -- connection ------------------------------------------------------------------

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None
                conn = self._connect()
                try:
                    write_frame(conn, m.encode(request))
                    reply = m.decode(read_frame(conn))
                except (PeerClosed, FrameError, BrokenPipeError, ConnectionResetError) as error:
                    self._disconnect()
                    if attempt == 2 or fresh:
                        raise errors.SignerUnreachable(
                            f"the signing service at {self._path} closed the connection "
                            f"({type(error).__name__})",
                            "check `agent p11-server` (journalctl -u agent-p11-server)",
                        ) from error
                    continue  # the service restarted since our last request
                except TimeoutError as error:
                    self._disconnect()
                    raise errors.SignerUnreachable(
                        f"the signing service at {self._path} did not answer within "
                        f"{REQUEST_TIMEOUT:.0f} s",
                        "check that the token is present and `agent p11-server` is healthy",
                    ) from error
                except m.BadRequest as error:
                    self._disconnect()
                    raise errors.SignerProtocolError(
                        f"the signing service at {self._path} sent a malformed answer: "
                        f"{error.cause}"
                    ) from error
                m.raise_for_error(reply)
                return reply
        raise AssertionError("unreachable")

    def _connect(self) -> socket.socket:
        if self._conn is not None:
            return self._conn
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(REQUEST_TIMEOUT)
        try:
            conn.connect(str(self._path))
        except FileNotFoundError:
            conn.close()
            raise errors.SignerUnreachable(
                f"no signing service socket at {self._path}",
                "start it (systemctl start agent-p11-server.socket, or `agent p11-server`), "
                "or fix device.cryptoki.socket_path",
            ) from None
        except ConnectionRefusedError:
            conn.close()
            raise errors.SignerUnreachable(
                f"the signing service at {self._path} is not running (connection refused)",
                "start it: systemctl start agent-p11-server (or run `agent p11-server`)",
            ) from None
        except PermissionError:
            conn.close()
            raise errors.SignerUnreachable(
                f"permission denied on the signing service socket {self._path}",
                "run the agent as a user in the socket's group (p11_server.socket_group)",
            ) from None
        try:
            write_frame(conn, m.encode({"op": "hello", "versions": list(m.VERSIONS)}))
            reply = m.decode(read_frame(conn))
        except (OSError, PeerClosed, FrameError, m.BadRequest) as error:
            conn.close()
            raise errors.SignerUnreachable(
                f"the signing service at {self._path} did not answer hello ({error})",
                "check `agent p11-server` is running and of the same edgeagent version",
            ) from error
        try:
            m.raise_for_error(reply)
        except errors.AgentError:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def open_socket_signer(socket_path: Path, key_uri: str | None) -> SocketSigner:
    return SocketSigner(socket_path, key_uri)


__all__ = ["SocketSigner", "open_socket_signer"]

"""A Signer that asks the signing service (`agent p11-server`) over its Unix socket.

The agent never loads a PKCS#11 module nor sees the PIN in this mode. One
connection is kept and shared (requests are serialised); if the service
restarted in between, the request is sent once more on a new connection,
which is safe because signing has no side effects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeagent import errors
from edgeagent.protocol import messages as m
from edgeagent.protocol.schemes import HashName, Padding, scheme_name
from edgeagent.signing.service_connection import REQUEST_TIMEOUT, ServiceConnection
from edgeagent.signing.signer import PublicKey, Signer


class SocketSigner(Signer):
    cryptoki = True

    def __init__(self, socket_path: Path, key_uri: str | None) -> None:
        self._path = socket_path
        self._uri = key_uri
        self._conn = ServiceConnection(socket_path, REQUEST_TIMEOUT)
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
        self._conn.close()

    # -- connection ------------------------------------------------------------------

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._conn.request(request)


def open_socket_signer(socket_path: Path, key_uri: str | None) -> SocketSigner:
    return SocketSigner(socket_path, key_uri)


__all__ = ["SocketSigner", "open_socket_signer"]

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
from edgeagent.pkcs11.origin import KeyOrigin
from edgeagent.protocol import messages as m
from edgeagent.protocol.schemes import HashName, Padding, scheme_name
from edgeagent.signing.service_connection import REQUEST_TIMEOUT, ServiceConnection
from edgeagent.signing.signer import PublicKey, Signer


class ServiceTooOld(errors.SignerProtocolError):
    """The signing service does not know a request this agent needs."""


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

    def key_origin(self) -> KeyOrigin:
        """CKA_LOCAL / CKA_NEVER_EXTRACTABLE / CKA_ALWAYS_SENSITIVE as the service reads them.

        A service older than this request answers ``bad_request`` "unknown op":
        that is ServiceTooOld, which names the fix, not a protocol failure.
        """
        try:
            reply = self._request({"op": "key_origin", "uri": self._uri})
        except errors.SignerProtocolError as error:
            if "unknown op 'key_origin'" not in str(error):
                raise
            raise ServiceTooOld(
                f"the signing service at {self._path} is older than this agent: it does not "
                "report where the key came from (the key_origin request)",
                "update the signing service (agent p11-server) to this edgeagent version "
                "and restart it",
            ) from error
        return m.parse_origin(reply)

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


__all__ = ["ServiceTooOld", "SocketSigner", "open_socket_signer"]

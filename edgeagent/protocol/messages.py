"""Messages of the signing socket, version 1 (spec: docs/signing-protocol.md).

Every frame body is a JSON object. Requests carry ``op``; responses carry
``ok`` and either the result fields or ``error``::

    -> {"op": "hello", "versions": [1]}
    <- {"ok": true, "version": 1, "server": "edgeagent-p11-server/0.1.0"}
    -> {"op": "public_key", "uri": "pkcs11:token=t;object=k"}       (uri may be null)
    <- {"ok": true, "uri": "pkcs11:...;type=private", "public_key": "<base64 DER SPKI>"}
    -> {"op": "key_origin", "uri": null}
    <- {"ok": true, "uri": "...", "local": true, "never_extractable": true,
        "always_sensitive": null}                                  (null: not reported)
    -> {"op": "sign", "uri": null, "scheme": "ecdsa_secp256r1_sha256", "digest": "<base64>"}
    <- {"ok": true, "signature": "<base64; DER for ECDSA>"}
    -> {"op": "ping"}
    <- {"ok": true}
    <- {"ok": false, "error": {"code": "pin_incorrect", "message": "...", "fix": "..."}}

``sign`` takes either ``digest`` (already hashed with the scheme's hash) or
``data`` (the server hashes it). ``hello`` must come first on a connection.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from edgeagent import errors
from edgeagent.pkcs11.origin import KeyOrigin
from edgeagent.protocol.schemes import DIGEST_SIZES, SCHEMES, HashName, Padding

VERSIONS = (1,)
"""Protocol versions this code speaks, newest last."""

Op = Literal[
    "hello",
    "ping",
    "public_key",
    "key_origin",
    "sign",
    "list_tokens",
    "list_keys",
    "create_key",
    "delete_key",
]

# -- typed errors on the wire ------------------------------------------------------

# Error code on the wire <-> our error class. The client raises the same
# error the module mode would have raised.
ERROR_CODES: dict[str, type[errors.AgentError]] = {
    "module_load_failed": errors.ModuleLoadError,
    "token_access_denied": errors.TokenAccessDenied,
    "token_not_found": errors.TokenNotFound,
    "token_not_initialized": errors.TokenNotInitialized,
    "pin_incorrect": errors.PinIncorrect,
    "pin_locked": errors.PinLocked,
    "key_not_found": errors.KeyNotFound,
    "unsupported_key_type": errors.UnsupportedKeyType,
    "invalid_uri": errors.InvalidKeyUri,
    "token_ambiguous": errors.TokenAmbiguous,
    "token_in_use": errors.TokenInUse,
    "key_in_use": errors.KeyInUse,
    "token_error": errors.TokenOperationFailed,
    "admin_not_allowed": errors.AdminNotAllowed,
    "unsupported_scheme": errors.UnsupportedKeyType,
    "unsupported_version": errors.SignerProtocolError,
    "bad_request": errors.SignerProtocolError,
    "not_allowed": errors.SignerUnreachable,
    "busy": errors.SignerUnreachable,
    "internal": errors.SignerProtocolError,
}


class BadRequest(errors.SignerProtocolError):
    """A request the server cannot act on; answered with ``bad_request``."""


class UnsupportedScheme(errors.UnsupportedKeyType):
    """A sign request names a scheme this protocol does not define."""


# Our error -> wire code, most specific first: the first isinstance match wins.
# A separate table from ERROR_CODES because several codes decode to one class
# (bad_request and unsupported_version are both a SignerProtocolError).
_CODE_FOR: tuple[tuple[type[errors.AgentError], str], ...] = (
    (BadRequest, "bad_request"),
    (UnsupportedScheme, "unsupported_scheme"),
    (errors.ModuleLoadError, "module_load_failed"),
    (errors.TokenAccessDenied, "token_access_denied"),
    (errors.TokenNotFound, "token_not_found"),
    (errors.TokenNotInitialized, "token_not_initialized"),
    (errors.PinIncorrect, "pin_incorrect"),
    (errors.PinLocked, "pin_locked"),
    (errors.KeyNotFound, "key_not_found"),
    (errors.UnsupportedKeyType, "unsupported_key_type"),
    (errors.InvalidKeyUri, "invalid_uri"),
    (errors.TokenAmbiguous, "token_ambiguous"),
    (errors.TokenInUse, "token_in_use"),
    (errors.KeyInUse, "key_in_use"),
    (errors.TokenError, "token_error"),
    (errors.AdminNotAllowed, "admin_not_allowed"),
)


def error_code_for(error: errors.AgentError) -> str:
    """The wire code for one of our errors (most specific match; else ``internal``)."""
    for cls, code in _CODE_FOR:
        if isinstance(error, cls):
            return code
    return "internal"


MAX_ERROR_TEXT = 2048
"""Error texts are cut to this many characters: they may quote the request."""


def error_response(code: str, message: str, fix: str = "") -> dict[str, Any]:
    return {
        "ok": False,
        "error": {"code": code, "message": message[:MAX_ERROR_TEXT], "fix": fix[:MAX_ERROR_TEXT]},
    }


def raise_for_error(response: dict[str, Any]) -> None:
    """Turn an error response back into our error class; no-op for ``ok``."""
    if response.get("ok") is True:
        return
    error = response.get("error")
    if not isinstance(error, dict):
        raise errors.SignerProtocolError("the signing service sent a malformed error response")
    cls = ERROR_CODES.get(str(error.get("code")), errors.SignerProtocolError)
    raise cls(str(error.get("message", "signing service error")), str(error.get("fix", "")))


# -- encoding ------------------------------------------------------------------------


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(body: bytes) -> dict[str, Any]:
    """A frame body as a JSON object; BadRequest for anything else."""
    try:
        # Decoded here, not by json.loads: that would also accept UTF-16/32.
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"frame body is not UTF-8 JSON: {error}") from error
    except RecursionError:
        raise BadRequest("frame body is JSON nested too deeply") from None
    if not isinstance(message, dict):
        raise BadRequest("frame body must be a JSON object")
    return message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(message: dict[str, Any], field: str) -> bytes:
    value = message.get(field)
    if not isinstance(value, str):
        raise BadRequest(f"field {field!r} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadRequest(f"field {field!r} is not valid base64") from error


@dataclass(frozen=True)
class SignRequest:
    uri: str | None
    hash_name: HashName
    padding: Padding
    digest: bytes | None
    data: bytes | None


def parse_uri_field(message: dict[str, Any]) -> str | None:
    uri = message.get("uri")
    if uri is not None and not isinstance(uri, str):
        raise BadRequest("field 'uri' must be a string or null")
    return uri


def parse_sign(message: dict[str, Any]) -> SignRequest:
    scheme = message.get("scheme")
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise UnsupportedScheme(
            f"unsupported signature scheme {scheme!r:.100}",
            f"use one of: {', '.join(SCHEMES)}",
        )
    hash_name, padding = SCHEMES[scheme]
    has_digest, has_data = "digest" in message, "data" in message
    if has_digest == has_data:
        raise BadRequest("a sign request carries exactly one of 'digest' or 'data'")
    digest = unb64(message, "digest") if has_digest else None
    if digest is not None and len(digest) != DIGEST_SIZES[hash_name]:
        raise BadRequest(
            f"a {hash_name} digest is {DIGEST_SIZES[hash_name]} bytes, not {len(digest)}"
        )
    data = unb64(message, "data") if has_data else None
    return SignRequest(parse_uri_field(message), hash_name, padding, digest, data)


# -- key_origin ------------------------------------------------------------------------

ORIGIN_FIELDS = ("local", "never_extractable", "always_sensitive")
"""CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE: true, false or null (unknown)."""


def origin_fields(origin: KeyOrigin) -> dict[str, bool | None]:
    return {
        "local": origin.local,
        "never_extractable": origin.never_extractable,
        "always_sensitive": origin.always_sensitive,
    }


def parse_origin(message: dict[str, Any]) -> KeyOrigin:
    """A ``key_origin`` response's three attributes; a missing one is unknown."""
    values: list[bool | None] = []
    for name in ORIGIN_FIELDS:
        value = message.get(name)
        if value is not None and not isinstance(value, bool):
            raise errors.SignerProtocolError(
                f"the signing service sent {name}={value!r:.40}: not true, false or null"
            )
        values.append(value)
    return KeyOrigin(*values)

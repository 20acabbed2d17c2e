"""Messages of the signing socket: decoding, sign requests, typed errors.

The error round trip runs the real server and the real SocketSigner over a
Unix socket, with a stand-in for the token (pure logic: no PKCS#11 here).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edgeagent import errors
from edgeagent.cli.exit_codes import exit_code_for
from edgeagent.p11server.peers import PeerPolicy
from edgeagent.p11server.server import SigningServer
from edgeagent.protocol import messages as m
from edgeagent.protocol.frame import FrameStream, encode_frame
from edgeagent.protocol.schemes import DIGEST_SIZES, SCHEMES
from edgeagent.signing.socket_signer import SocketSigner

# -- decoding -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe{}", '{"op":"ping"}'.encode("utf-16"), b"{", b"[" * 100_000],
    ids=["text", "bad-utf8", "utf16", "cut", "deeply-nested"],
)
def test_a_body_that_is_not_utf8_json_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(m.BadRequest, match="JSON"):
        m.decode(body)


@pytest.mark.parametrize("body", [b"[]", b"1", b'"op"', b"null", b"true"])
def test_a_body_that_is_not_an_object_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(m.BadRequest, match="JSON object"):
        m.decode(body)


def test_an_object_decodes() -> None:
    assert m.decode(b'{"op": "ping"}') == {"op": "ping"}
    assert m.decode(m.encode({"op": "ping"})) == {"op": "ping"}


def _sign(**fields: Any) -> dict[str, Any]:
    return {"op": "sign", "uri": None, "scheme": "ecdsa_sha256", **fields}


DIGEST = m.b64(hashlib.sha256(b"x").digest())


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (_sign(digest="***"), "not valid base64"),
        (_sign(digest="YWJ"), "not valid base64"),  # bad padding
        (_sign(digest="é"), "not valid base64"),
        (_sign(digest=42), "must be a base64 string"),
        (_sign(digest=m.b64(b"short")), "a sha256 digest is 32 bytes, not 5"),
        (_sign(scheme="rsa_pss_rsae_sha512", digest=DIGEST), "sha512 digest is 64 bytes"),
        (_sign(), "exactly one of"),
        (_sign(digest=DIGEST, data=m.b64(b"x")), "exactly one of"),
        (_sign(data=None), "must be a base64 string"),
        (_sign(uri=7, digest=DIGEST), "'uri' must be a string or null"),
    ],
)
def test_malformed_sign_requests_are_bad_requests(request_: dict[str, Any], words: str) -> None:
    with pytest.raises(m.BadRequest, match=words):
        m.parse_sign(request_)


@pytest.mark.parametrize("scheme", [None, 3, "", "ed25519", "rsa_pss_pss_sha256", "ECDSA_SHA256"])
def test_an_unknown_scheme_is_unsupported_scheme(scheme: object) -> None:
    with pytest.raises(m.UnsupportedScheme) as caught:
        m.parse_sign(_sign(scheme=scheme, digest=DIGEST))
    assert "ecdsa_secp256r1_sha256" in caught.value.fix
    assert m.error_code_for(caught.value) == "unsupported_scheme"


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_scheme_parses_with_a_digest_of_its_hash(scheme: str) -> None:
    hash_name, padding = SCHEMES[scheme]
    digest = bytes(DIGEST_SIZES[hash_name])
    parsed = m.parse_sign(_sign(scheme=scheme, digest=m.b64(digest), uri="pkcs11:token=t"))
    assert (parsed.hash_name, parsed.padding, parsed.digest, parsed.data, parsed.uri) == (
        hash_name,
        padding,
        digest,
        None,
        "pkcs11:token=t",
    )


def test_data_is_taken_as_is() -> None:
    parsed = m.parse_sign(_sign(data=m.b64(b"")))
    assert parsed.data == b"" and parsed.digest is None


def test_error_texts_are_bounded() -> None:
    response = m.error_response("bad_request", "x" * 100_000, "y" * 100_000)
    assert len(encode_frame(m.encode(response))) < 2 * m.MAX_ERROR_TEXT + 200


# -- error codes ------------------------------------------------------------------------

# What the server raises -> the code on the wire -> what the client raises.
SERVER_ERRORS: list[tuple[errors.AgentError, str, type[errors.AgentError]]] = [
    (errors.ModuleLoadError("m"), "module_load_failed", errors.ModuleLoadError),
    (errors.TokenAccessDenied("m"), "token_access_denied", errors.TokenAccessDenied),
    (errors.TokenNotFound("m"), "token_not_found", errors.TokenNotFound),
    (errors.TokenNotInitialized("m"), "token_not_initialized", errors.TokenNotInitialized),
    (errors.PinIncorrect("m"), "pin_incorrect", errors.PinIncorrect),
    (errors.PinLocked("m"), "pin_locked", errors.PinLocked),
    (errors.KeyNotFound("m"), "key_not_found", errors.KeyNotFound),
    (errors.UnsupportedKeyType("m"), "unsupported_key_type", errors.UnsupportedKeyType),
    (m.UnsupportedScheme("m"), "unsupported_scheme", errors.UnsupportedKeyType),
    (errors.InvalidKeyUri("m"), "invalid_uri", errors.InvalidKeyUri),
    (errors.TokenAmbiguous("m"), "token_ambiguous", errors.TokenAmbiguous),
    (errors.TokenInUse("m"), "token_in_use", errors.TokenInUse),
    (errors.KeyInUse("m"), "key_in_use", errors.KeyInUse),
    (errors.TokenOperationFailed("m"), "token_error", errors.TokenOperationFailed),
    (errors.AdminNotAllowed("m"), "admin_not_allowed", errors.AdminNotAllowed),
    (m.BadRequest("m"), "bad_request", errors.SignerProtocolError),
    (errors.MissingConfigValue("m"), "internal", errors.SignerProtocolError),
]


def _concrete_token_errors() -> list[type[errors.TokenError]]:
    found: list[type[errors.TokenError]] = []
    todo: list[type[errors.TokenError]] = [errors.TokenError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not errors.TokenError and cls.__module__ == errors.__name__:
            found.append(cls)
    return found


@pytest.mark.parametrize("cls", _concrete_token_errors(), ids=lambda c: c.__name__)
def test_every_token_error_crosses_the_wire_as_itself(cls: type[errors.TokenError]) -> None:
    # A TokenError added to errors.py without a wire code would reach the
    # agent as TokenOperationFailed, with another exit code than module mode.
    code = m.error_code_for(cls("x"))
    assert m.ERROR_CODES[code] is cls


def test_every_wire_code_has_a_server_error_in_this_table_or_is_server_made() -> None:
    # unsupported_version, not_allowed and busy are answered by the server itself.
    covered = {code for _, code, _ in SERVER_ERRORS} | {
        "unsupported_version",
        "not_allowed",
        "busy",
    }
    assert covered == set(m.ERROR_CODES)


@pytest.mark.parametrize("code", sorted(m.ERROR_CODES))
def test_every_code_raises_its_class_with_message_and_fix(code: str) -> None:
    with pytest.raises(errors.AgentError) as caught:
        m.raise_for_error(m.error_response(code, "the cause", "the fix"))
    assert type(caught.value) is m.ERROR_CODES[code]
    assert (caught.value.cause, caught.value.fix) == ("the cause", "the fix")


@pytest.mark.parametrize(
    "response",
    [{}, {"ok": False}, {"ok": False, "error": "x"}, {"ok": "true"}, {"ok": 1}],
)
def test_a_malformed_error_response_is_a_protocol_error(response: dict[str, Any]) -> None:
    with pytest.raises(errors.SignerProtocolError):
        m.raise_for_error(response)


def test_an_unknown_code_is_a_protocol_error_keeping_the_message() -> None:
    with pytest.raises(errors.SignerProtocolError, match="from the future"):
        m.raise_for_error(m.error_response("quota_exceeded", "from the future"))


def test_ok_responses_pass() -> None:
    m.raise_for_error({"ok": True})


# -- the real server and client over a socket, with a stand-in token -----------------


@dataclass
class FakeSigner:
    public: ec.EllipticCurvePublicKey
    location: str = "pkcs11:token=fake;object=k;type=private"
    calls: list[tuple[bytes, str, str]] = field(default_factory=list)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.public

    def sign_digest(self, digest: bytes, hash_name: str, padding: str) -> bytes:
        self.calls.append((digest, hash_name, padding))
        return b"sig:" + digest


@dataclass
class FakeKeys:
    """Stands in for TokenKeys: raises ``error`` if set, else serves one signer."""

    signer_: FakeSigner
    error: errors.AgentError | None = None

    def signer(self, uri: str | None) -> FakeSigner:
        if self.error is not None:
            raise self.error
        return self.signer_


@dataclass
class Served:
    path: Path
    keys: FakeKeys

    def raw(self) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(5)
        conn.connect(str(self.path))
        return conn

    def ask(self, conn: socket.socket, request: dict[str, Any]) -> dict[str, Any]:
        FrameStream(conn, idle_timeout=5, frame_timeout=5).write(m.encode(request))
        return self.answer(conn)

    def answer(self, conn: socket.socket) -> dict[str, Any]:
        """The next frame as JSON, without checking it is a protocol message."""
        body: dict[str, Any] = json.loads(FrameStream(conn, idle_timeout=5, frame_timeout=5).read())
        return body


@pytest.fixture
def served() -> Iterator[Served]:
    directory = Path(tempfile.mkdtemp(prefix="p11u-", dir="/tmp"))  # AF_UNIX paths are short
    path = directory / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    keys = FakeKeys(FakeSigner(ec.generate_private_key(ec.SECP256R1()).public_key()))
    policy = PeerPolicy(frozenset({os.getuid()}), frozenset())
    stop = threading.Event()
    server = SigningServer(listener, keys, policy)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_until, args=(stop,), daemon=True)
    thread.start()
    yield Served(path, keys)
    stop.set()  # the accept loop notices within 0.5 s; no need to wait for it
    listener.close()
    shutil.rmtree(directory)


@pytest.mark.parametrize(
    ("raised", "code", "expected"), SERVER_ERRORS, ids=[c for _, c, _ in SERVER_ERRORS]
)
def test_a_server_error_reaches_the_client_as_the_same_error(
    served: Served,
    raised: errors.AgentError,
    code: str,
    expected: type[errors.AgentError],
) -> None:
    served.keys.error = type(raised)("what went wrong on the token", "what to do")

    conn = served.raw()
    assert served.ask(conn, {"op": "hello", "versions": [1]})["ok"] is True
    answer = served.ask(conn, {"op": "public_key", "uri": None})
    assert answer["error"]["code"] == code
    conn.close()

    with pytest.raises(errors.AgentError) as caught:
        SocketSigner(served.path, None)
    assert type(caught.value) is expected
    if code != "internal":
        assert caught.value.cause == "what went wrong on the token"
        assert caught.value.fix == "what to do"
    # The agent's exit code is the one module mode gives for the same failure.
    if isinstance(raised, errors.TokenError):
        assert exit_code_for(caught.value) == exit_code_for(raised)


def test_the_socket_signer_signs_through_the_server(served: Served) -> None:
    signer = SocketSigner(served.path, "pkcs11:token=fake")
    digest = hashlib.sha384(b"m").digest()
    assert signer.sign_digest(digest, "sha384", "ecdsa") == b"sig:" + digest
    assert served.keys.signer_.calls == [(digest, "sha384", "ecdsa")]
    assert signer.public_key() == served.keys.signer_.public
    assert "via the signing service at" in signer.location
    signer.close()


def test_the_server_hashes_data_with_the_schemes_hash(served: Served) -> None:
    conn = served.raw()
    served.ask(conn, {"op": "hello", "versions": [1]})
    answer = served.ask(
        conn, {"op": "sign", "uri": None, "scheme": "rsa_pss_rsae_sha512", "data": m.b64(b"abc")}
    )
    expected = hashlib.sha512(b"abc").digest()
    assert base64.b64decode(answer["signature"]) == b"sig:" + expected
    assert served.keys.signer_.calls == [(expected, "sha512", "pss")]


@pytest.mark.parametrize(
    ("versions", "answer"),
    [
        ([1], {"ok": True, "version": 1}),
        ([1, 2, 7], {"ok": True, "version": 1}),
        ([2, 1], {"ok": True, "version": 1}),
        ([2], "unsupported_version"),
        ([], "unsupported_version"),
        ([True], "unsupported_version"),
        (["1"], "unsupported_version"),
        ("1", "bad_request"),
        (None, "bad_request"),
    ],
)
def test_hello_picks_the_highest_common_version(
    served: Served, versions: object, answer: object
) -> None:
    conn = served.raw()
    reply = served.ask(conn, {"op": "hello", "versions": versions})
    if isinstance(answer, str):
        assert reply["ok"] is False and reply["error"]["code"] == answer
        # No version agreed: the connection is still not greeted.
        assert served.ask(conn, {"op": "ping"})["error"]["code"] == "bad_request"
    else:
        assert {k: reply[k] for k in ("ok", "version")} == answer
        assert reply["server"].startswith("edgeagent-p11-server/")


def test_hello_must_come_first(served: Served) -> None:
    conn = served.raw()
    reply = served.ask(conn, {"op": "ping"})
    assert reply["error"]["code"] == "bad_request"
    assert "first request" in reply["error"]["message"]
    assert served.ask(conn, {"op": "hello", "versions": [1]})["ok"] is True
    assert served.ask(conn, {"op": "ping"}) == {"ok": True}


@pytest.mark.parametrize(
    "request_",
    [{"op": "delete_key"}, {"op": None}, {}, {"op": "x" * 60_000}],
    ids=["unknown", "null", "missing", "huge"],
)
def test_an_unknown_op_is_a_bad_request_and_the_connection_goes_on(
    served: Served, request_: dict[str, Any]
) -> None:
    conn = served.raw()
    served.ask(conn, {"op": "hello", "versions": [1]})
    reply = served.ask(conn, request_)
    assert reply["error"]["code"] == "bad_request"
    assert served.ask(conn, {"op": "ping"}) == {"ok": True}


def test_garbage_in_a_good_frame_is_answered_and_the_connection_goes_on(served: Served) -> None:
    conn = served.raw()
    served.ask(conn, {"op": "hello", "versions": [1]})
    conn.sendall(encode_frame(b"\x00garbage"))
    assert served.answer(conn)["error"]["code"] == "bad_request"
    assert served.ask(conn, {"op": "ping"}) == {"ok": True}


def test_a_bad_length_is_answered_then_the_connection_is_closed(served: Served) -> None:
    conn = served.raw()
    conn.sendall(b"\x7f\xff\xff\xff")
    assert served.answer(conn)["error"]["code"] == "bad_request"
    conn.settimeout(5)
    assert conn.recv(1) == b""

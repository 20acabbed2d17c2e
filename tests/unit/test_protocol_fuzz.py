"""Property tests: the frame decoder and the message decoder on arbitrary input.

Whatever a peer sends, in whatever pieces, the only exceptions are the
protocol's own: FrameError from the framing, our AgentError types (BadRequest
among them) from the messages. Anything else (KeyError, RecursionError,
UnicodeError, struct.error, ...) would be a crash path in the server.

Bounded for CI: a few hundred examples each, a few seconds in total.
"""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeagent import errors
from edgeagent.p11server.peers import Peer, PeerPolicy
from edgeagent.p11server.server import SigningServer
from edgeagent.protocol import messages as m
from edgeagent.protocol.frame import MAX_FRAME, FrameDecoder, FrameError
from edgeagent.protocol.schemes import SCHEMES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
field_values = json_values | st.binary(max_size=70).map(m.b64) | st.sampled_from(sorted(SCHEMES))
requests = st.fixed_dictionaries(
    {"op": st.sampled_from(["hello", "ping", "public_key", "sign", "x"]) | json_values},
    optional={
        "uri": st.none() | st.text(max_size=30) | json_values,
        "scheme": st.sampled_from(sorted(SCHEMES)) | json_values,
        "digest": field_values,
        "data": field_values,
        "versions": st.lists(st.integers(-2, 3) | json_values, max_size=3) | json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    requests.map(lambda r: json.dumps(r).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=50).map(str.encode),
    # deep nesting: json.loads raises RecursionError, not ValueError
    st.tuples(st.sampled_from([b"[", b'{"a":']), st.integers(1, 30_000)).map(lambda t: t[0] * t[1]),
)
streams = st.one_of(
    st.binary(max_size=300),
    st.lists(bodies.map(_frame), max_size=4).map(b"".join),
    # a valid frame followed by arbitrary bytes, or a header announcing anything
    st.tuples(bodies.map(_frame), st.binary(max_size=40)).map(b"".join),
    st.tuples(
        st.integers(0, 2**32 - 1).map(lambda n: struct.pack(">I", n)), st.binary(max_size=40)
    ).map(b"".join),
)


@FUZZ
@given(stream=streams, sizes=st.lists(st.integers(1, 64), max_size=5))
def test_decoding_frames_from_any_bytes_raises_only_protocol_errors(
    stream: bytes, sizes: list[int]
) -> None:
    decoder = FrameDecoder()
    sizes = sizes or [1]
    consumed = 0
    offset = 0
    turn = 0
    while offset < len(stream):
        size = sizes[turn % len(sizes)]
        turn += 1
        decoder.feed(stream[offset : offset + size])
        offset += size
        while True:
            try:
                body = decoder.next_frame()
            except FrameError:
                return
            if body is None:
                break
            consumed += 4 + len(body)
            assert 1 <= len(body) <= MAX_FRAME
            assert consumed <= offset
            try:
                message = m.decode(body)
            except errors.AgentError:
                continue
            assert isinstance(message, dict)
    assert decoder.idle == (consumed == len(stream))  # what is not a frame yet is kept


class FakeSigner:
    location = "pkcs11:token=fake"
    _public = ec.generate_private_key(ec.SECP256R1()).public_key()

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign_digest(self, digest: bytes, hash_name: str, padding: str) -> bytes:
        return b"sig"


class FakeKeys:
    def signer(self, uri: str | None) -> FakeSigner:
        if uri is not None and not uri.startswith("pkcs11:"):
            raise errors.InvalidKeyUri(f"not a PKCS#11 URI: {uri!r}")
        return FakeSigner()


SERVER = SigningServer(None, FakeKeys(), PeerPolicy(frozenset(), frozenset()))  # type: ignore[arg-type]
PEER = Peer(pid=1, uid=65534, gid=65534, groups=frozenset())


@FUZZ
@given(body=bodies)
def test_answering_any_body_gives_a_response_or_one_of_our_errors(body: bytes) -> None:
    try:
        request = m.decode(body)
        response: dict[str, Any] = SERVER._answer(request, PEER)
    except errors.AgentError as error:
        response = m.error_response(m.error_code_for(error), error.cause, error.fix)
    # Whatever it is, it can be sent back: JSON, within one frame.
    encoded = m.encode(response)
    assert 0 < len(encoded) <= MAX_FRAME
    assert isinstance(response["ok"], bool)


@FUZZ
@given(response=json_values)
def test_the_client_turns_any_response_into_ok_or_one_of_our_errors(response: Any) -> None:
    if not isinstance(response, dict):
        return
    try:
        m.raise_for_error(response)
    except errors.AgentError:
        return
    assert response.get("ok") is True


@FUZZ
@given(
    message=st.dictionaries(
        st.sampled_from(["uri", "key_type", "label", "id", "force_new"]), json_values
    )
)
def test_admin_requests_parse_or_raise_one_of_our_errors(message: dict[str, Any]) -> None:
    from edgeagent.protocol import admin as wire

    for parse in (wire.parse_create_key, wire.parse_delete_key):
        with contextlib.suppress(errors.AgentError):
            parse(message)

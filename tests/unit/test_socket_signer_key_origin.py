"""The socket signer's key_origin against a service that predates the request.

The "old service" is a minimal protocol-1 server in a thread that answers
hello and public_key, and any other op exactly as the released service did
(``bad_request``, "unknown op ...; known: ..."). The real service's answer is
tested in tests/integration/test_cert_key_origin.py.
"""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgeagent import errors
from edgeagent.protocol import messages as m
from edgeagent.protocol.frame import FrameStream, PeerClosed
from edgeagent.signing.key_policy import describe_origin
from edgeagent.signing.socket_signer import ServiceTooOld, SocketSigner

OLD_OPS = "hello, ping, public_key, sign, list_tokens, list_keys, create_key, delete_key"
Answer = Callable[[dict[str, Any]], dict[str, Any]]


def _old_service(request: dict[str, Any]) -> dict[str, Any]:
    return m.error_response("bad_request", f"unknown op {request.get('op')!r}; known: {OLD_OPS}")


def _serve(listener: socket.socket, answer: Answer, public_der: bytes) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        stream = FrameStream(conn, idle_timeout=5, frame_timeout=5)
        try:
            while True:
                request = m.decode(stream.read())
                op = request.get("op")
                if op == "hello":
                    response: dict[str, Any] = {"ok": True, "version": 1, "server": "old"}
                elif op == "public_key":
                    response = {
                        "ok": True,
                        "uri": "pkcs11:object=k",
                        "public_key": m.b64(public_der),
                    }
                else:
                    response = answer(request)
                stream.write(m.encode(response))
        except (PeerClosed, OSError, TimeoutError):
            conn.close()


@pytest.fixture
def service() -> Iterator[Callable[[Answer], Path]]:
    listeners: list[socket.socket] = []
    directory = Path(tempfile.mkdtemp(prefix="ko-", dir="/tmp"))
    public_der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def start(answer: Answer) -> Path:
        path = directory / f"s{len(listeners)}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen()
        listeners.append(listener)
        threading.Thread(target=_serve, args=(listener, answer, public_der), daemon=True).start()
        return path

    yield start
    for listener in listeners:
        listener.close()


def test_an_old_service_says_update_it_not_a_protocol_crash(
    service: Callable[[Answer], Path],
) -> None:
    signer = SocketSigner(service(_old_service), None)
    try:
        with pytest.raises(ServiceTooOld) as raised:
            signer.key_origin()
        assert "older than this agent" in raised.value.cause
        assert "update the signing service" in raised.value.fix
        described = describe_origin(signer)
        assert described.startswith("unknown (the signing service at ")
        assert "update the signing service" in described
    finally:
        signer.close()


def test_the_three_attributes_travel_as_true_false_or_null(
    service: Callable[[Answer], Path],
) -> None:
    def answer(request: dict[str, Any]) -> dict[str, Any]:
        assert request == {"op": "key_origin", "uri": None}
        return {"ok": True, "uri": "pkcs11:object=k", "local": True, "never_extractable": False}

    signer = SocketSigner(service(answer), None)
    try:
        origin = signer.key_origin()
        assert (origin.local, origin.never_extractable, origin.always_sensitive) == (
            True,
            False,
            None,
        )
        assert origin.hardware is False
    finally:
        signer.close()


def test_a_value_that_is_not_a_boolean_is_a_protocol_error(
    service: Callable[[Answer], Path],
) -> None:
    signer = SocketSigner(service(lambda _: {"ok": True, "local": "yes"}), None)
    try:
        with pytest.raises(errors.SignerProtocolError, match="local='yes'"):
            signer.key_origin()
    finally:
        signer.close()

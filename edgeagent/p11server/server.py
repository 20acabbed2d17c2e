"""`agent p11-server`: serve the token's keys over a Unix socket.

    server = SigningServer(listening_socket, keys, policy)
    server.serve_until(stop_event)

One thread per connection; a bad frame, a slow or hostile client or a token
error closes (or answers) that one connection, never the server. The
PKCS#11 session is shared and serialised inside the module layer, so many
clients may sign at once.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from typing import Any

from cryptography.hazmat.primitives import serialization

from edgeagent import __version__
from edgeagent.errors import AgentError
from edgeagent.p11server.admin import answer_admin
from edgeagent.p11server.keys import TokenKeys
from edgeagent.p11server.peers import Peer, PeerPolicy, peer_of
from edgeagent.protocol import messages as m
from edgeagent.protocol.admin import ADMIN_OPS
from edgeagent.protocol.frame import FrameError, FrameStream, PeerClosed, encode_frame

log = logging.getLogger("edgeagent.p11server")

MAX_CLIENTS = 64
IDLE_TIMEOUT = 300.0  # between requests; clients reconnect transparently
FRAME_TIMEOUT = 10.0  # a frame must arrive whole within this
LINGER_TIMEOUT = 1.0  # a refused client's answer stays readable this long
MAX_LINGER_BYTES = 128 * 1024
SERVER_NAME = f"edgeagent-p11-server/{__version__}"


class SigningServer:
    def __init__(self, listener: socket.socket, keys: TokenKeys, policy: PeerPolicy) -> None:
        self._listener = listener
        self._keys = keys
        self._policy = policy
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._stop = threading.Event()

    def serve_until(self, stop: threading.Event) -> None:
        """Accept clients until ``stop`` is set."""
        self._listener.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as error:
                if stop.is_set():
                    break
                log.error("accept failed: %s", error)
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("refusing a client: %d clients already connected", MAX_CLIENTS)
                _send_quietly(
                    conn,
                    m.error_response(
                        "busy",
                        f"the signing service already serves {MAX_CLIENTS} clients",
                        "retry later; check for clients that keep connections open",
                    ),
                )
                conn.close()
                continue
            threading.Thread(target=self._serve_client, args=(conn,), daemon=True).start()
        self._stop.set()

    # -- one client ------------------------------------------------------------------

    def _serve_client(self, conn: socket.socket) -> None:
        try:
            peer = peer_of(conn)
            if not self._policy.allows(peer):
                log.warning("refused peer %s: not in %s", peer, self._policy.describe())
                _send_quietly(
                    conn,
                    m.error_response(
                        "not_allowed",
                        f"the signing service does not serve uid {peer.uid}",
                        "add this user to p11_server.allowed_users or to an allowed group",
                    ),
                )
                _linger(conn)
                return
            log.debug("client connected: %s", peer)
            self._conversation(conn, peer)
        except (OSError, FrameError) as error:
            log.debug("client connection error: %s", error)
        finally:
            conn.close()
            self._slots.release()

    def _conversation(self, conn: socket.socket, peer: Peer) -> None:
        stream = FrameStream(conn, idle_timeout=IDLE_TIMEOUT, frame_timeout=FRAME_TIMEOUT)
        greeted = False
        while not self._stop.is_set():
            try:
                body = stream.read()
            except PeerClosed:
                return
            except TimeoutError:
                # Idle between frames: close without a word, the client
                # reconnects on its next request.
                return
            except FrameError as error:
                # The stream can't be trusted past a framing fault: answer, close.
                _send_quietly(conn, m.error_response("bad_request", str(error)))
                return
            try:
                request = m.decode(body)
                if not greeted and request.get("op") != "hello":
                    raise m.BadRequest("the first request on a connection must be 'hello'")
                response = self._answer(request, peer)
                greeted = greeted or response.get("ok") is True
            except AgentError as error:
                response = m.error_response(m.error_code_for(error), error.cause, error.fix)
            except Exception as error:
                log.exception("internal error answering a request")
                response = m.error_response("internal", f"internal error: {type(error).__name__}")
            stream.write(m.encode(response))

    def _answer(self, request: dict[str, Any], peer: Peer) -> dict[str, Any]:
        op = request.get("op")
        if op == "hello":
            versions = request.get("versions")
            if not isinstance(versions, list):
                raise m.BadRequest("'hello' needs a list 'versions'")
            offered = {v for v in versions if type(v) is int}  # not bool: True == 1
            common = [v for v in m.VERSIONS if v in offered]
            if not common:
                return m.error_response(
                    "unsupported_version",
                    f"the signing service speaks protocol versions {list(m.VERSIONS)}, "
                    f"the client {sorted(offered)}",
                    "install the same edgeagent version for the agent and the signing service",
                )
            return {"ok": True, "version": max(common), "server": SERVER_NAME}
        if op == "ping":
            return {"ok": True}
        if op == "public_key":
            signer = self._keys.signer(m.parse_uri_field(request))
            der = signer.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return {"ok": True, "uri": signer.location, "public_key": m.b64(der)}
        if op == "sign":
            sign = m.parse_sign(request)
            signer = self._keys.signer(sign.uri)
            digest = sign.digest
            if digest is None:
                assert sign.data is not None
                digest = hashlib.new(sign.hash_name, sign.data).digest()
            signature = signer.sign_digest(digest, sign.hash_name, sign.padding)
            return {"ok": True, "signature": m.b64(signature)}
        if op in ADMIN_OPS:
            return answer_admin(str(op), request, peer, self._keys)
        known = ", ".join(("hello", "ping", "public_key", "sign", *ADMIN_OPS))
        raise m.BadRequest(f"unknown op {op!r}; known: {known}")


def _send_quietly(conn: socket.socket, response: dict[str, Any]) -> None:
    try:
        conn.settimeout(1.0)
        conn.sendall(encode_frame(m.encode(response)))
    except OSError:
        pass


def _linger(conn: socket.socket) -> None:
    """Let a refused client read its answer before the connection goes away.

    Closing at once races the client's hello: it would get EPIPE on its write
    instead of reading why it was refused. Half-close, then discard what it
    sends (bounded in bytes and time) until it closes.
    """
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(LINGER_TIMEOUT)
        received = 0
        while received < MAX_LINGER_BYTES:
            chunk = conn.recv(4096)
            if not chunk:
                return
            received += len(chunk)
    except OSError:
        pass

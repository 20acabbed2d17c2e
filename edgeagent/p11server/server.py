"""`agent p11-server`: serve the token's keys over a Unix socket.

    server = SigningServer(listening_socket, keys, policy)
    server.serve_until(stop_event)

One thread per connection; a bad frame, a slow or hostile client or a token
error closes (or answers) that one connection, never the server. The
PKCS#11 session is shared and serialised inside the module layer, so many
clients may sign at once.

Against a local user who opens connections to starve the others: a peer
that is not served is answered and closed before it takes a slot (and only
a few refusals linger at once); a connection must say ``hello`` within
HELLO_TIMEOUT; one uid holds at most MAX_CLIENTS_PER_UID of the MAX_CLIENTS
slots; refusals are logged at most once per uid per REFUSAL_LOG_INTERVAL.
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
from edgeagent.p11server.refusals import RefusalLog
from edgeagent.protocol import messages as m
from edgeagent.protocol.admin import ADMIN_OPS
from edgeagent.protocol.frame import FrameError, FrameStream, PeerClosed, encode_frame

log = logging.getLogger("edgeagent.p11server")

MAX_CLIENTS = 64
MAX_CLIENTS_PER_UID = 16  # below MAX_CLIENTS: one user cannot take every slot
HELLO_TIMEOUT = 5.0  # from accept to the first frame
IDLE_TIMEOUT = 300.0  # between requests; clients reconnect transparently
FRAME_TIMEOUT = 10.0  # a frame must arrive whole within this
LINGER_TIMEOUT = 1.0  # a refused client's answer stays readable this long
MAX_LINGER_BYTES = 128 * 1024
MAX_LINGERING = 8  # refused peers given LINGER_TIMEOUT at once; others are closed at once
REFUSAL_LOG_INTERVAL = 60.0
SERVER_NAME = f"edgeagent-p11-server/{__version__}"


class SigningServer:
    def __init__(self, listener: socket.socket, keys: TokenKeys, policy: PeerPolicy) -> None:
        self._listener = listener
        self._keys = keys
        self._policy = policy
        self._stop = threading.Event()
        self._count_lock = threading.Lock()
        self._clients = 0
        self._per_uid: dict[int, int] = {}
        self._lingering = threading.BoundedSemaphore(MAX_LINGERING)
        self._refusals = RefusalLog(log, REFUSAL_LOG_INTERVAL)

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
            self._accepted(conn)
        self._stop.set()

    def _accepted(self, conn: socket.socket) -> None:
        """Refuse (without a slot) or start serving one new connection."""
        try:
            peer = peer_of(conn)
        except OSError as error:
            log.debug("no credentials for a new connection: %s", error)
            conn.close()
            return
        if not self._policy.allows(peer):
            self._refuse(
                conn,
                peer,
                f"refused peer {peer}: not in {self._policy.describe()}",
                m.error_response(
                    "not_allowed",
                    f"the signing service does not serve uid {peer.uid}",
                    "add this user to p11_server.allowed_users or to an allowed group",
                ),
            )
            return
        busy = self._take_slot(peer.uid)
        if busy is not None:
            self._refuse(
                conn,
                peer,
                f"refused peer {peer}: {busy}",
                m.error_response(
                    "busy", busy, "retry later; check for clients that keep connections open"
                ),
            )
            return
        threading.Thread(target=self._serve_client, args=(conn, peer), daemon=True).start()

    def _take_slot(self, uid: int) -> str | None:
        """Count a client of ``uid`` in; why not, when it cannot be."""
        with self._count_lock:
            if self._clients >= MAX_CLIENTS:
                return f"the signing service already serves {MAX_CLIENTS} clients"
            held = self._per_uid.get(uid, 0)
            if held >= MAX_CLIENTS_PER_UID:
                return (
                    f"uid {uid} already holds {MAX_CLIENTS_PER_UID} connections to the "
                    "signing service"
                )
            self._clients += 1
            self._per_uid[uid] = held + 1
            return None

    def _free_slot(self, uid: int) -> None:
        with self._count_lock:
            self._clients -= 1
            left = self._per_uid.pop(uid) - 1
            if left:
                self._per_uid[uid] = left

    def _refuse(self, conn: socket.socket, peer: Peer, why: str, answer: dict[str, Any]) -> None:
        """Answer and close, holding no client slot; logged at most once per uid per interval."""
        self._refusals.note(peer.uid, why)
        if not self._lingering.acquire(blocking=False):
            # Flooded with refusals: no thread and no wait for this one.
            _send_quietly(conn, answer, timeout=0.0)
            conn.close()
            return

        def linger() -> None:
            try:
                _send_quietly(conn, answer)
                _linger(conn)
            finally:
                conn.close()
                self._lingering.release()

        threading.Thread(target=linger, daemon=True).start()

    # -- one client ------------------------------------------------------------------

    def _serve_client(self, conn: socket.socket, peer: Peer) -> None:
        try:
            log.debug("client connected: %s", peer)
            self._conversation(conn, peer)
        except (OSError, FrameError) as error:
            log.debug("client connection error: %s", error)
        finally:
            conn.close()
            self._free_slot(peer.uid)

    def _conversation(self, conn: socket.socket, peer: Peer) -> None:
        # Until hello, a connection that says nothing is closed soon: an idle
        # slot is what a hostile client would hold.
        stream = FrameStream(conn, idle_timeout=HELLO_TIMEOUT, frame_timeout=FRAME_TIMEOUT)
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
                if not greeted and response.get("ok") is True:
                    greeted = True
                    stream.idle_timeout = IDLE_TIMEOUT
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
        if op == "key_origin":
            signer = self._keys.signer(m.parse_uri_field(request))
            return {"ok": True, "uri": signer.location, **m.origin_fields(signer.key_origin())}
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
        known = ", ".join(("hello", "ping", "public_key", "key_origin", "sign", *ADMIN_OPS))
        raise m.BadRequest(f"unknown op {op!r}; known: {known}")


def _send_quietly(conn: socket.socket, response: dict[str, Any], timeout: float = 1.0) -> None:
    try:
        conn.settimeout(timeout)
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

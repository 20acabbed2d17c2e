"""One MQTT 3.1.1 connection for the bridge, driven by the bridge's event loop.

    session = MqttSession(endpoint, events, will=Will("health", b"down", qos=1, retain=True))
    session.connect()                       # blocking: TCP, TLS, CONNECT/CONNACK
                                            # (or open() in a worker, resume_opened() here)
    ...selector says readable...  session.on_readable()
    session.publish("s/us", b"...", qos=1, token=origin)
    ...events.on_delivered(session, origin) when the broker has it...

The token is the caller's, opaque here (the bridge's ``Delivery``: what to
acknowledge on the other side); ``MqttSession[T]`` carries tokens of type T.

The session (clean_session=False) outlives the socket: QoS 1/2 messages not
yet acknowledged by the broker are sent again, marked DUP, after a
reconnect; inbound QoS 2 ids are remembered until PUBREL. Messages beyond
the in-flight window wait in a queue; since the bridge acknowledges a
message to its source only once the other side has it, that queue is
bounded by the source broker's own in-flight window.

Over 400 lines on purpose: it is the one state machine of a link (connect,
both QoS 1/2 flows, keepalive) and its invariants cross those parts. The
off-loop connect (``open``) is the candidate to move out when it grows.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from edgeagent.errors import BrokerRefused, BrokerUnreachable
from edgeagent.mqtt import packets as p
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.mqtt.packets import Will
from edgeagent.tls.refusal import refused_after_handshake

log = logging.getLogger("edgeagent.bridge")

BRIDGE_PROTOCOL_LEVEL = 0x84  # MQTT 3.1.1 (4) with mosquitto's bridge bit (0x80)
READ_SIZE = 16384  # 64 KiB reads cost ~1 MB more peak heap in the benchmarks, no throughput
READS_PER_WAKEUP = 4
WRITE_CHUNK = 64 * 1024
MAX_WRITE_BUFFER = 4 << 20  # QoS 0 beyond this is dropped rather than hoarded


TokenT = TypeVar("TokenT")


class ConnectCancelled(Exception):
    """A connect in progress was stopped on purpose (:meth:`ConnectAttempt.cancel`)."""


class ConnectAttempt:
    """A handle on one :meth:`MqttSession.open` that another thread can cancel.

    ``cancel`` shuts the socket down, which wakes a blocked read or handshake
    at once; the open then raises :class:`ConnectCancelled`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.cancelled = False

    def holding(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if sock is not None and self.cancelled:
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)


@dataclass(slots=True)
class Opened:
    """A connected, authenticated socket (after CONNACK), not yet in use."""

    sock: Any
    present: bool  # CONNACK's session-present
    reader: p.PacketReader


def _send_all(sock: Any, data: bytes) -> None:
    """Send a packet on a blocking socket, ours or TLS (which gathers, then flushes)."""
    view = memoryview(data)
    while view:
        view = view[sock.send(view) :]
    flush = getattr(sock, "flush", None)
    if flush is not None and not flush():
        raise TimeoutError("the broker is not reading")


class SessionEvents(Protocol[TokenT]):
    def on_message(self, session: MqttSession[TokenT], message: p.Publish) -> None: ...

    def on_delivered(self, session: MqttSession[TokenT], token: TokenT | None) -> None:
        """The broker has the message published with ``token`` (QoS 1: PUBACK, 2: PUBREC)."""


@dataclass(slots=True)
class _Outgoing(Generic[TokenT]):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    token: TokenT | None
    packet_id: int = 0
    released: bool = False  # QoS 2: PUBREC came, PUBREL sent


class MqttSession(Generic[TokenT]):
    def __init__(
        self,
        endpoint: Endpoint,
        events: SessionEvents[TokenT],
        will: Will | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._events = events
        self._will = will
        self.sock: Any = None
        self.up = False
        self._reader = p.PacketReader()
        self._wbuf = bytearray()
        self._inflight: dict[int, _Outgoing[TokenT]] = {}
        self._queue: deque[_Outgoing[TokenT]] = deque()
        # Inbound messages, by packet id, in the broker session `generation`:
        # forwarded and not yet acked (so a DUP redelivery is not forwarded
        # twice), QoS 2 ones acked with PUBREC until PUBREL, and acks owed
        # while the link was down (sent as soon as the session is resumed).
        self.generation = 0
        self._forwarded: dict[int, int] = {}  # packet id -> qos
        self._incoming_qos2: dict[int, bool] = {}  # packet id -> PUBREC sent
        self._owed_acks: dict[int, int] = {}  # packet id -> qos
        self._subscribe_ids: set[int] = set()
        # A random start keeps a restarted process from reusing, in the same
        # persistent session, a QoS 2 id the broker still holds.
        self._next_id = random.randrange(65535)  # noqa: S311 - not security
        self._last_sent = 0.0
        self._last_received = 0.0
        self._ping_sent: float | None = None
        self.dropped_qos0 = 0
        self._bridge_protocol_refused = False

    # -- connecting --------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, authenticate and resume the session; blocking, bounded by connect_timeout."""
        self.resume_opened(self.open())

    def open(self, attempt: ConnectAttempt | None = None) -> Opened:
        """TCP, TLS and CONNECT/CONNACK within one deadline: ``connect_timeout`` in total.

        Blocking, and safe in another thread than the one driving the session:
        it reads the endpoint and touches no session state (bar remembering a
        refused bridge protocol), so the bridge's loop runs on meanwhile and
        hands the result to :meth:`resume_opened`. ``attempt`` lets another
        thread cut it short (:meth:`ConnectAttempt.cancel`).
        """
        attempt = attempt or ConnectAttempt()
        ep = self.endpoint
        where = f"{ep.name} broker {ep.host}:{ep.port}"
        deadline = time.monotonic() + ep.connect_timeout

        def left() -> float:
            remaining = deadline - time.monotonic()
            if attempt.cancelled:
                raise ConnectCancelled(f"connecting to the {where} was stopped")
            if remaining <= 0:
                raise expired()
            return remaining

        def expired() -> TimeoutError:
            return TimeoutError(
                f"{where} did not answer CONNECT within the connect timeout "
                f"({ep.connect_timeout:.1f} s)"
            )

        try:
            raw = socket.create_connection((ep.host, ep.port), timeout=left())
        except OSError as error:
            raise BrokerUnreachable(
                f"{where} is unreachable: {error.strerror or error}",
                "check that the broker runs and the host and port are right",
            ) from error
        sock: Any = raw
        secured = False
        try:
            attempt.holding(raw)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ep.tls is not None:
                sock = ep.tls.wrap_socket(raw, server_hostname=ep.host)
                sock.settimeout(left())  # the TLS handshake's budget, in total (tls/deadline.py)
                sock.do_handshake()
                secured = True
            level = BRIDGE_PROTOCOL_LEVEL if self.bridge_mode else 4
            packet = p.connect(ep.client_id, ep.keepalive, False, ep.username, self._will, level)
            sock.settimeout(left())
            _send_all(sock, packet)
            reader = p.PacketReader()
            present, code = self._await_connack(sock, reader, left)
        except BaseException as error:
            with contextlib.suppress(OSError):
                sock.close()
            if attempt.cancelled:
                raise ConnectCancelled(f"connecting to the {where} was stopped") from error
            if isinstance(error, TimeoutError) and time.monotonic() >= deadline:
                raise expired() from error  # the last read's timeout was the time left
            closed = isinstance(error, (OSError, BrokerUnreachable))
            if closed and secured and not isinstance(error, TimeoutError):
                # Closed on us between the handshake and CONNACK: a refusal (refusal.py).
                raise refused_after_handshake(ep.tls, f"{ep.host}:{ep.port}") from error
            raise
        finally:
            attempt.holding(None)
        if code == 1 and self.bridge_mode:
            sock.close()
            self._bridge_protocol_refused = True
            raise BrokerRefused(
                f"{where} does not accept mosquitto's bridge protocol (level 0x84); "
                "plain MQTT 3.1.1 from the next attempt on: live messages then reach "
                "the bridge without their retain flag",
                "use mosquitto as the local broker to keep retain flags",
            )
        if code != 0:
            sock.close()
            raise BrokerRefused(
                f"{where} refused the connection: {p.CONNACK_REASONS.get(code, code)}",
                "check that the device certificate (or its CA) is registered with the cloud",
            )
        sock.setblocking(False)
        return Opened(sock, present, reader)

    def resume_opened(self, opened: Opened) -> None:
        """Start the session on a connection :meth:`open` made (in any thread)."""
        self._reader = opened.reader  # it may hold what came right after CONNACK
        self._wbuf.clear()
        self.resume(opened.sock, opened.present)
        ep = self.endpoint
        log.debug(
            "%s broker %s:%d connected (session present: %s)",
            ep.name,
            ep.host,
            ep.port,
            opened.present,
        )

    @property
    def bridge_mode(self) -> bool:
        """Connecting as a mosquitto bridge (`Endpoint.bridge_protocol`, not refused)."""
        return self.endpoint.bridge_protocol and not self._bridge_protocol_refused

    def resume(self, sock: Any, present: bool) -> None:
        """Start sending on a connected, authenticated socket (after CONNACK).

        ``present``: the broker kept our session (CONNACK's session-present).
        """
        ep = self.endpoint
        self.sock = sock
        self.up = True
        self._ping_sent = None
        self._last_received = time.monotonic()
        if not present:
            # A new broker session: the ids of the old one mean nothing now.
            # Acks still owed or pending for them must not hit new messages.
            self.generation += 1
            self._forwarded.clear()
            self._incoming_qos2.clear()
            self._owed_acks.clear()
        for packet_id, qos in self._owed_acks.items():
            self._send_ack(packet_id, qos)
        self._owed_acks.clear()
        if ep.subscriptions:
            subscribe_id = self._new_id()
            self._subscribe_ids.add(subscribe_id)
            filters = [(f, ep.subscribe_qos) for f in ep.subscriptions]
            self._send(p.subscribe(subscribe_id, filters))
        # Whatever the broker has not acknowledged goes again, in the order it
        # was first sent (dicts keep insertion order; ids may have wrapped).
        for out in list(self._inflight.values()):
            if out.released:
                self._send(p.ack(p.PUBREL, out.packet_id))
            else:
                self._send(
                    p.publish(out.topic, out.payload, out.qos, out.retain, out.packet_id, dup=True)
                )
        self._fill_window()

    def _await_connack(
        self, sock: Any, reader: p.PacketReader, left: Callable[[], float]
    ) -> tuple[bool, int]:
        while True:
            sock.settimeout(left())  # a trickle of bytes must not outlast the deadline
            data = sock.recv(READ_SIZE)
            if not data:
                raise BrokerUnreachable(
                    f"{self.endpoint.name} broker closed the connection before CONNACK",
                    "see the broker's log for why it refused the device",
                )
            for kind, _, body in reader.feed(data):
                if kind != p.CONNACK:
                    raise p.ProtocolError(f"expected CONNACK, got packet type {kind}")
                return p.parse_connack(body)

    def close(self, graceful: bool = True) -> None:
        if self.sock is None:
            return
        if graceful and self.up:
            with contextlib.suppress(OSError):
                self._send(p.DISCONNECT_PACKET)
                self._flush_blocking(timeout=2.0)
        self.up = False
        with contextlib.suppress(OSError):
            self.sock.close()
        self.sock = None

    # -- sending -------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        token: TokenT | None = None,
    ) -> bool:
        """Queue a message. QoS 0 is sent only when up; False if it was dropped.

        At QoS 1 and 2, ``events.on_delivered(self, token)`` follows once the
        broker has it.
        """
        if qos == 0:
            if not self.up or len(self._wbuf) > MAX_WRITE_BUFFER:
                self.dropped_qos0 += 1
                return False
            self._send(p.publish(topic, payload, 0, retain, 0))
            return True
        self._queue.append(_Outgoing(topic, payload, qos, retain, token))
        if self.up:
            self._fill_window()
        return True

    def ack(self, packet_id: int, qos: int, generation: int | None = None) -> None:
        """Acknowledge an inbound message (the bridge calls this once the other side has it).

        ``generation`` is the broker session the message came in; an ack for
        an older session is dropped (its id may belong to a new message now).
        """
        if generation is not None and generation != self.generation:
            return
        self._forwarded.pop(packet_id, None)
        if qos == 2:
            self._incoming_qos2[packet_id] = True
        if self.up:
            self._send_ack(packet_id, qos)
        elif qos:
            self._owed_acks[packet_id] = qos  # sent when the session resumes

    def not_forwarded(self, packet_id: int) -> None:
        """The bridge could not forward this inbound message: take its redelivery."""
        self._forwarded.pop(packet_id, None)
        if self._incoming_qos2.get(packet_id) is False:
            del self._incoming_qos2[packet_id]

    def _send_ack(self, packet_id: int, qos: int) -> None:
        if qos == 1:
            self._send(p.ack(p.PUBACK, packet_id))
        elif qos == 2:
            self._send(p.ack(p.PUBREC, packet_id))

    @property
    def awaiting_ping(self) -> bool:
        return self._ping_sent is not None

    @property
    def backlog(self) -> int:
        return len(self._inflight) + len(self._queue)

    def _fill_window(self) -> None:
        while self._queue and len(self._inflight) < self.endpoint.max_inflight:
            out = self._queue.popleft()
            out.packet_id = self._new_id()
            self._inflight[out.packet_id] = out
            self._send(p.publish(out.topic, out.payload, out.qos, out.retain, out.packet_id))

    def _new_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._inflight and self._next_id not in self._subscribe_ids:
                return self._next_id
        raise p.ProtocolError("all 65535 packet ids are in flight")

    def _send(self, packet: bytes) -> None:
        self._wbuf += packet
        self._last_sent = time.monotonic()

    @property
    def write_backlog(self) -> int:
        """Bytes accepted for sending that the network has not taken yet."""
        tls_pending = getattr(self.sock, "unsent", 0)
        return len(self._wbuf) + (tls_pending if isinstance(tls_pending, int) else 0)

    @property
    def wants_write(self) -> bool:
        return bool(self._wbuf) or bool(getattr(self.sock, "wants_write", False))

    def flush(self) -> None:
        """Write what the socket takes now, without blocking."""
        if self.sock is None:
            return
        if self._wbuf:
            try:
                sent = self.sock.send(memoryview(self._wbuf)[:WRITE_CHUNK])
            except BlockingIOError:  # and TLS's WantRead/WantWrite
                sent = 0
            del self._wbuf[:sent]
        if self.endpoint.tls is not None:
            self.sock.flush()

    def _flush_blocking(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.endpoint.connect_timeout)
        while self.wants_write:
            self.flush()
            if not self.wants_write:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.endpoint.name} broker is not reading")
            time.sleep(0.005)

    # -- receiving -----------------------------------------------------------------------

    def on_readable(self) -> bool:
        """Read and handle what arrived; True if more may be waiting already."""
        for _ in range(READS_PER_WAKEUP):
            try:
                data = self.sock.recv(READ_SIZE)
            except BlockingIOError:  # and TLS's WantRead/WantWrite
                return False
            if not data:
                raise ConnectionError(f"{self.endpoint.name} broker closed the connection")
            self._last_received = time.monotonic()
            for kind, flags, body in self._reader.feed(data):
                self._handle(kind, flags, body)
        return True

    @property
    def has_buffered_input(self) -> bool:
        """Decrypted bytes waiting inside the TLS layer (select would not see them)."""
        pending = getattr(self.sock, "pending", None)
        return bool(pending and pending())

    def _handle(self, kind: int, flags: int, body: bytes) -> None:
        if kind == p.PUBLISH:
            message = p.parse_publish(flags, body)
            packet_id = message.packet_id
            if message.qos == 2:
                acked = self._incoming_qos2.get(packet_id)
                if acked is not None:  # a redelivery: handled once already
                    if acked:
                        self._send(p.ack(p.PUBREC, packet_id))
                    return
                self._incoming_qos2[packet_id] = False
            elif message.qos == 1:
                if packet_id in self._forwarded:
                    return  # a redelivery of one still on its way: its ack will come
                if packet_id in self._owed_acks:
                    return
            if message.qos:
                self._forwarded[packet_id] = message.qos
            self._events.on_message(self, message)
        elif kind == p.PUBACK:
            out = self._inflight.pop(p.parse_packet_id(body), None)
            if out is not None:
                self._events.on_delivered(self, out.token)
                self._fill_window()
        elif kind == p.PUBREC:
            packet_id = p.parse_packet_id(body)
            out = self._inflight.get(packet_id)
            self._send(p.ack(p.PUBREL, packet_id))
            if out is not None and not out.released:
                out.released = True
                self._events.on_delivered(self, out.token)  # the broker owns it now
        elif kind == p.PUBCOMP:
            if self._inflight.pop(p.parse_packet_id(body), None) is not None:
                self._fill_window()
        elif kind == p.PUBREL:
            packet_id = p.parse_packet_id(body)
            self._incoming_qos2.pop(packet_id, None)
            self._send(p.ack(p.PUBCOMP, packet_id))
        elif kind == p.SUBACK:
            self._subscribe_ids.discard(p.parse_packet_id(body))
            if b"\x80" in body[2:]:
                log.warning(
                    "%s broker refused a subscription (SUBACK %s)",
                    self.endpoint.name,
                    body[2:].hex(),
                )
        elif kind == p.PINGRESP:
            self._ping_sent = None
        else:
            raise p.ProtocolError(f"unexpected packet type {kind} from the broker")

    # -- keepalive -----------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Send PINGREQ when idle; raise when the broker stopped answering."""
        if not self.up:
            return
        keepalive = self.endpoint.keepalive
        if self._ping_sent is not None and now - self._ping_sent > keepalive:
            raise ConnectionError(f"{self.endpoint.name} broker stopped answering PINGREQ")
        quiet = now - self._last_sent >= keepalive * 0.75
        # Sending alone proves nothing on a half-open link: also ping when
        # nothing has come back for a keepalive period.
        deaf = now - self._last_received >= keepalive
        if self._ping_sent is None and (quiet or deaf):
            self._send(p.PINGREQ_PACKET)
            self._ping_sent = now

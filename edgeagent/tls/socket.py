"""A TLS 1.3 socket for paho-mqtt, on tlslite-ng.

paho does the handshake in blocking mode (with its connect timeout), then
switches the socket to non-blocking and drives it with ``select``. A
non-blocking TLS socket must never lose a partial record or spin: tlslite's
``readAsync``/``writeAsync`` generators keep their place between calls, so we
keep them too and raise ``WantRead``/``WantWrite`` when they are waiting for
the network. Both are ``BlockingIOError``, which paho treats as it treats
``ssl.SSLWantReadError``/``SSLWantWriteError`` ("try again"; only its
external-event-loop callbacks, which we do not use, tell them apart), and
which spares the bridge's runtime loading the ``ssl`` module (1.4 MB of RSS).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
from collections.abc import Callable, Generator
from typing import Any

from tlslite.errors import TLSAbruptCloseError, TLSError, TLSRemoteAlert
from tlslite.tlsconnection import TLSConnection

from edgeagent.errors import AgentError

_WANT_READ, _WANT_WRITE = 0, 1

MAX_RECORD = 16384  # TLS's largest record: send once this much has gathered
FLUSH_TIMEOUT = 30.0
FLUSH_CHUNK = 4 * MAX_RECORD

log = logging.getLogger("edgeagent.tls")


class WantRead(BlockingIOError):
    """No whole TLS record yet: wait until the socket is readable."""


class WantWrite(BlockingIOError):
    """The socket's send buffer is full: wait until it is writable."""


Handshake = Callable[[TLSConnection], None]


class TlsSocket:
    """The socket paho sees: ``do_handshake``, ``recv``, ``send``, ``pending``..."""

    def __init__(self, sock: socket.socket, conn: TLSConnection, handshake: Handshake) -> None:
        self._sock = sock
        self._conn = conn
        self._handshake = handshake
        self._reader: Generator[Any, None, None] | None = None
        self._writer: Generator[Any, None, None] | None = None
        self._out = bytearray()
        self._buffer = b""
        self._closed = False
        # The alert the server ended the connection with, for the error that
        # reports it (bridge/probe.py: a refusal right after the handshake).
        self.remote_alert: TLSRemoteAlert | None = None

    def do_handshake(self) -> None:
        """Blocking handshake + server verification; raises our TLS errors."""
        self._handshake(self._conn)

    def await_certificate_verdict(self, wait: float) -> bool:
        """After the handshake: has the server accepted the device certificate?

        A TLS 1.3 server checks the client's certificate after our last
        handshake flight, so our side "succeeds" either way; the server then
        sends its session tickets (accepted) or an alert and closes (refused).
        This reads those records only, for at most ``wait`` seconds: True on a
        ticket, False when nothing came (a server that sends no tickets, or a
        slow one); ConnectionError when the server closed (``remote_alert``
        says why, tls/refusal.py names it). Over TLS 1.2 the server's Finished
        came after it checked our certificate: True at once.
        """
        conn = self._conn
        if tuple(conn.version) < (3, 4):
            return True
        deadline = time.monotonic() + wait
        while not conn.tickets:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._sock.settimeout(left)
            try:
                data = conn.read(max=None, min=0)  # one record: a ticket, an alert...
            except TimeoutError:
                return False
            except TLSRemoteAlert as alert:
                self.remote_alert = alert
                raise ConnectionError(f"TLS alert from the server: {alert}") from alert
            except (TLSAbruptCloseError, TLSError) as error:
                raise ConnectionError(f"the server closed the connection: {error}") from error
            if conn.closed:
                raise ConnectionError("the server closed the connection (close_notify)")
            if data:
                self._buffer += bytes(data)  # it talks to us: it took the certificate
                return True
        return True

    # -- data ------------------------------------------------------------------

    def recv(self, bufsize: int) -> bytes:
        if not self._buffer and not self._fill():
            return b""  # orderly close
        data, self._buffer = self._buffer[:bufsize], self._buffer[bufsize:]
        return data

    def _fill(self) -> bool:
        """Decrypt every complete record already received; False at end of stream.

        tlslite reads from the kernel in 4 KiB chunks into a buffer of its
        own, so whole records can wait there while ``select`` sees an empty
        socket. We keep decrypting while that buffer holds bytes: what is
        left afterwards is at most a partial record, whose rest must arrive
        from the kernel and so wakes ``select``.
        """
        while True:
            if self._closed:
                return bool(self._buffer)
            if self._reader is None:
                self._reader = self._conn.readAsync()
            try:
                result = next(self._reader)
            except StopIteration:
                self._reader = None
                return bool(self._buffer)
            except (TLSAbruptCloseError, ConnectionResetError):
                self._reader = None
                return bool(self._buffer)
            except TLSError as error:
                self._reader = None
                if isinstance(error, TLSRemoteAlert):
                    self.remote_alert = error
                raise ConnectionError(f"TLS error from the server: {error}") from error
            if result == _WANT_READ:
                if self._buffer:
                    return True
                raise WantRead("TLS record incomplete")
            if result == _WANT_WRITE:
                if self._buffer:
                    return True
                raise WantWrite("TLS wants to write")
            self._reader = None
            if not result:
                return bool(self._buffer)  # close_notify
            self._buffer += bytes(result)
            if not self._conn.sock._read_buffer:
                return True

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Take ``data`` for sending; returns how much was taken.

        MQTT packets are small and paho writes them one by one; one TLS
        record and one syscall each would cost more than the packets
        themselves. So plaintext is coalesced here and sent as one record
        when paho's loop next calls :meth:`pending` (it does, every round,
        before it blocks in select) or when a full record has gathered.
        When the network is full, a record stays half-written inside
        tlslite's generator and nothing more is taken until it is out.
        """
        if self._writer is not None or len(self._out) >= MAX_RECORD:
            self._flush(block=False)  # raises WantWrite: paho retries later
        self._out += data
        return len(data)

    def pending(self) -> int:
        """Decrypted bytes ready without touching the network (paho #131).

        Also sends what :meth:`send` gathered: paho calls this at the top of
        every loop round, after writing and before waiting.
        """
        if self._out or self._writer is not None:
            try:
                self._flush(block=True)
            except OSError as error:
                # paho does not expect errors from pending(): break the
                # connection so its next read reports it the usual way.
                log.debug("TLS connection broken while sending: %s", error)
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                self._out.clear()
                self._writer = None
        return len(self._buffer) + len(self._conn._readBuffer)

    def flush(self) -> bool:
        """Send what is gathered without blocking; True when nothing is left."""
        try:
            self._flush(block=False)
        except WantWrite:
            return False
        return True

    @property
    def unsent(self) -> int:
        return len(self._out)

    @property
    def wants_write(self) -> bool:
        return bool(self._out) or self._writer is not None

    def _flush(self, *, block: bool) -> None:
        """Encrypt and send the gathered plaintext.

        ``block``: wait (bounded) for the socket to drain instead of raising
        WantWrite; used where paho will not select for writing.
        """
        while True:
            if self._writer is None:
                if not self._out:
                    return
                # At most a few records at a time: tlslite copies what it is
                # given several times over, and big copies stay as RSS.
                data = bytes(self._out[:FLUSH_CHUNK])
                del self._out[:FLUSH_CHUNK]
                self._writer = self._conn.writeAsync(data)
            try:
                for result in self._writer:
                    if result not in (_WANT_WRITE, _WANT_READ):
                        continue
                    if not block:
                        raise WantWrite("socket buffer full")
                    _, writable, _ = select.select([], [self._sock], [], FLUSH_TIMEOUT)
                    if not writable:
                        self._writer = None
                        raise TimeoutError(
                            f"the peer read nothing for {FLUSH_TIMEOUT:.0f} s while we sent"
                        )
            except TLSError as error:
                self._writer = None
                raise ConnectionError(f"TLS error while sending: {error}") from error
            self._writer = None

    # -- plumbing paho uses ------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # What paho wrote last (a DISCONNECT) must go out before close_notify.
            if self._out or self._writer is not None:
                self._flush(block=True)
        except OSError:
            pass
        try:
            # Best effort close_notify; never block a shutdown on it.
            self._sock.setblocking(False)
            for result in self._conn.closeAsync():
                if result in (_WANT_READ, _WANT_WRITE):
                    break
        except (TLSError, OSError, AgentError):
            pass
        finally:
            self._sock.close()

"""AWS IoT Core's port 443 in front of a stand-in broker: TLS that insists on ALPN.

    with AlpnFront(certfile=s.cert_path, keyfile=s.key_path, client_cafile=ca,
                   backend=("127.0.0.1", broker.port)) as front:
        ...  # MQTT over TLS to 127.0.0.1:front.port with ALPN "x-amzn-mqtt-ca"
        front.connections   # who came: SNI, ALPN, client CN, refused why

On port 443 AWS IoT Core serves HTTPS and MQTT alike and tells them apart by
the ALPN protocol the client offers: MQTT with a client certificate must
offer ``x-amzn-mqtt-ca``. This front does what that endpoint does for MQTT:
it completes a TLS handshake (client certificate from ``client_cafile``
required, TLS 1.2 or 1.3), selects ``x-amzn-mqtt-ca``, and closes any client
that did not negotiate it. An accepted client's bytes are relayed both ways
to ``backend``. ``alpn=None`` makes a front that selects no protocol and
lets everyone through: a server a correct client must refuse.

TLS ends here, as it does at AWS's edge. The hop to the broker is plain TCP
on loopback by default (the broker's anonymous listener): the front has
already checked the device certificate, and a second TLS layer would only
make the broker see the front's certificate instead of the device's.
``backend_tls`` wraps the hop in TLS all the same when a broker has no
plain listener.

One acceptor thread and one thread per connection (relaying with a
selector, so a TLS socket is only ever used by the thread that owns it);
`stop` ends and joins them all and closes every socket. Loopback only, port
chosen by the system unless given (``port=443``, as root: the agent offers
ALPN on AWS's port 443 only).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

AWS_MQTT_ALPN = "x-amzn-mqtt-ca"
_TICK = 0.1  # how often blocked threads look at the stop flag
_CHUNK = 65536


@dataclass
class FrontConnection:
    """One client of the front, as the front saw it."""

    peer: tuple[str, int]
    server_name: str | None = None  # SNI, if the client sent it
    alpn: str | None = None  # the protocol negotiated
    client_cn: str | None = None  # the client certificate's CN
    refused: str | None = None  # why it was closed before relaying, if it was
    relayed: bool = False
    bytes_up: int = 0
    bytes_down: int = 0
    done: threading.Event = field(default_factory=threading.Event, repr=False)


class AlpnFront:
    def __init__(
        self,
        *,
        certfile: Path,
        keyfile: Path,
        client_cafile: Path,
        backend: tuple[str, int],
        alpn: str | None = AWS_MQTT_ALPN,
        backend_tls: ssl.SSLContext | None = None,
        backend_hostname: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        handshake_timeout: float = 5.0,
        minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
    ) -> None:
        self.backend = backend
        self.alpn = alpn
        self.host = host
        self._listen_port = port  # 0: the system chooses
        self._backend_tls = backend_tls
        self._backend_hostname = backend_hostname or backend[0]
        self._handshake_timeout = handshake_timeout
        self._context = self._server_context(
            certfile, keyfile, client_cafile, minimum_version, maximum_version
        )
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: list[FrontConnection] = []
        self._lock = threading.Lock()
        self._port = 0

    def _server_context(
        self,
        certfile: Path,
        keyfile: Path,
        client_cafile: Path,
        minimum_version: ssl.TLSVersion,
        maximum_version: ssl.TLSVersion,
    ) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = minimum_version
        context.maximum_version = maximum_version
        context.load_cert_chain(str(certfile), str(keyfile))
        context.load_verify_locations(cafile=str(client_cafile))
        context.verify_mode = ssl.CERT_REQUIRED
        if self.alpn is not None:
            context.set_alpn_protocols([self.alpn])
        context.sni_callback = self._remember_server_name
        return context

    # -- running -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the front is not started")
        return self._port

    def start(self) -> Self:
        listener = socket.create_server((self.host, self._listen_port))
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._spawn(self._accept_loop, "alpn-front-accept")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, end every connection, join every thread."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        alive = [t.name for t in threads if t.is_alive()]
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if alive:
            raise RuntimeError(f"ALPN front threads still running after {timeout} s: {alive}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def threads(self) -> list[threading.Thread]:
        """Every thread the front started (for tests that check none is left behind)."""
        with self._lock:
            return list(self._threads)

    @property
    def connections(self) -> list[FrontConnection]:
        with self._lock:
            return list(self._connections)

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> list[FrontConnection]:
        """The first ``count`` connections, once each is decided (refused or relaying)."""
        deadline = time.monotonic() + timeout
        while True:
            first = self.connections[:count]
            if len(first) == count and all(c.refused or c.relayed for c in first):
                return first
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(first)} of {count} connections to the front decided")
            time.sleep(0.02)

    # -- threads -----------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select(_TICK):
                    continue
                try:
                    raw, peer = self._listener.accept()
                except OSError:
                    continue
                record = FrontConnection(peer=peer[:2])
                with self._lock:
                    self._connections.append(record)
                self._spawn(self._serve, f"alpn-front-{peer[1]}", raw, record)

    def _remember_server_name(
        self, tls: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _c: ssl.SSLContext
    ) -> None:
        record = getattr(tls, "front_record", None)
        if isinstance(record, FrontConnection):
            record.server_name = server_name

    def _serve(self, raw: socket.socket, record: FrontConnection) -> None:
        try:
            tls = self._handshake(raw, record)
            if tls is None:
                return
            with tls:
                self._serve_tls(tls, record)
        finally:
            raw.close()
            record.done.set()

    def _handshake(self, raw: socket.socket, record: FrontConnection) -> ssl.SSLSocket | None:
        raw.settimeout(self._handshake_timeout)
        try:
            tls = self._context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except OSError as error:
            record.refused = f"TLS setup failed: {error}"
            return None
        tls.front_record = record  # type: ignore[attr-defined]  # for the SNI callback
        try:
            tls.do_handshake()
        except (OSError, ssl.SSLError) as error:
            record.refused = f"TLS handshake failed: {error}"
            tls.close()
            return None
        record.alpn = tls.selected_alpn_protocol()
        record.client_cn = _common_name(tls.getpeercert())
        if self.alpn is not None and record.alpn != self.alpn:
            record.refused = f"ALPN {self.alpn!r} not negotiated (got {record.alpn!r})"
            tls.close()
            return None
        return tls

    def _serve_tls(self, tls: ssl.SSLSocket, record: FrontConnection) -> None:
        try:
            backend = socket.create_connection(self.backend, timeout=self._handshake_timeout)
        except OSError as error:
            record.refused = f"backend {self.backend[0]}:{self.backend[1]} unreachable: {error}"
            return
        with contextlib.ExitStack() as stack:
            stack.callback(backend.close)
            if self._backend_tls is not None:
                try:
                    backend = self._backend_tls.wrap_socket(
                        backend, server_hostname=self._backend_hostname
                    )
                except (OSError, ssl.SSLError) as error:
                    record.refused = f"TLS to the backend failed: {error}"
                    return
                stack.callback(backend.close)
            record.relayed = True
            self._relay(tls, backend, record)

    def _relay(
        self, client: ssl.SSLSocket, backend: socket.socket, record: FrontConnection
    ) -> None:
        client.settimeout(_TICK)
        backend.settimeout(_TICK)
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, (client, backend, "up"))
            selector.register(backend, selectors.EVENT_READ, (backend, client, "down"))
            while not self._stop.is_set():
                ready = [key.data for key, _ in selector.select(_TICK)]
                # Decrypted bytes can wait inside the TLS object with the socket quiet.
                if _pending(client) and not any(d[0] is client for d in ready):
                    ready.append((client, backend, "up"))
                if _pending(backend) and not any(d[0] is backend for d in ready):
                    ready.append((backend, client, "down"))
                for source, target, direction in ready:
                    try:
                        data = source.recv(_CHUNK)
                    except (ssl.SSLWantReadError, TimeoutError):
                        continue  # a partial TLS record: the rest is on its way
                    except OSError:
                        return
                    if not data:
                        return
                    try:
                        _send_all(target, data, self._stop)
                    except OSError:
                        return
                    if direction == "up":
                        record.bytes_up += len(data)
                    else:
                        record.bytes_down += len(data)


def _pending(sock: socket.socket) -> int:
    return sock.pending() if isinstance(sock, ssl.SSLSocket) else 0


def _send_all(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    view = memoryview(data)
    while view:
        if stop.is_set():
            raise OSError("the front is stopping")
        try:
            sent = sock.send(view)
        except (ssl.SSLWantWriteError, TimeoutError):
            continue
        view = view[sent:]


def _common_name(cert: Mapping[str, Any] | None) -> str | None:
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None

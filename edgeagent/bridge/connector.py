"""A link's connect, off the bridge's event loop.

    connecting = BackgroundConnect(session, wake)   # starts a worker thread
    ...the loop serves the other link; wake() makes its select return...
    if connecting.done: opened_or_error = connecting.outcome
    connecting.cancel()                              # stop: at once

Why a thread: a connect is TCP, a TLS handshake whose signature may take a
slow token (a TPM) seconds, and CONNECT/CONNACK. Made non-blocking inside
the loop, the signature would still block it, so the whole blocking
``MqttSession.open`` runs in a worker and only its result, a connected and
authenticated socket, is handed back. The worker touches no session state,
so the loop stays the one thread that drives a session (no locks there).

One deadline: ``open`` gives TCP + TLS + CONNACK the endpoint's
``connect_timeout`` in total (each blocking step gets the time left; the
TLS handshake, many reads, is cut off by a timer, see tls/deadline.py), so
a server that trickles bytes cannot hold a link for longer.

Stop: ``cancel`` shuts the worker's socket down from the loop's thread,
which wakes a blocked read at once; the worker then ends with
``ConnectCancelled``, which the bridge does not report as a failure. A
worker inside a token's signature cannot be woken; it is a daemon thread,
so it never holds the process's exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from edgeagent.mqtt.session import ConnectAttempt, MqttSession, Opened

TokenT = TypeVar("TokenT")


class BackgroundConnect(Generic[TokenT]):
    """One ``session.open()`` in a worker thread; ``wake`` is called when it ends."""

    def __init__(self, session: MqttSession[TokenT], wake: Callable[[], None]) -> None:
        self._session = session
        self._wake = wake
        self._attempt = ConnectAttempt()
        self._done = threading.Event()
        self.outcome: Opened | Exception | None = None
        self._thread = threading.Thread(
            target=self._run,
            # After the bridge's own thread: its log lines go to the same cloud (logs.py).
            name=f"{threading.current_thread().name}:connect-{session.endpoint.name}",
            daemon=True,
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            self.outcome = self._session.open(self._attempt)
        except Exception as error:  # handed to the loop, which reports it
            self.outcome = error
        finally:
            self._done.set()
            self._wake()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self, wait: float = 1.0) -> None:
        """Stop the connect now; wait up to ``wait`` s for the worker to end.

        A connection that was made anyway is closed: nobody will use it.
        """
        self._attempt.cancel()
        self._done.wait(wait)
        if isinstance(self.outcome, Opened):
            self.outcome.sock.close()
            self.outcome = None

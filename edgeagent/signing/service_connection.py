"""One connection to the signing service (`agent p11-server`), greeted and kept.

    conn = ServiceConnection(Path("/run/agent-p11-server/agent-p11-server.sock"))
    reply = conn.request({"op": "public_key", "uri": None})
    conn.request({"op": "create_key", ...}, retry=False)   # not safe to send twice
    conn.close()

Requests are serialised on the one connection. When a kept connection turns
out dead (the service restarted or closed it while idle), a request marked
``retry`` is sent once more on a new connection: right for signing and
reading, which have no side effects, wrong for token administration, which
a caller sends with ``retry=False``.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from edgeagent import errors
from edgeagent.protocol import messages as m
from edgeagent.protocol.frame import FrameError, FrameStream, FrameTimeout, PeerClosed

# Slow tokens (a TPM) sign in hundreds of ms, sometimes seconds.
REQUEST_TIMEOUT = 60.0


class ServiceConnection:
    def __init__(self, socket_path: Path, timeout: float = REQUEST_TIMEOUT) -> None:
        self.path = socket_path
        self._timeout = timeout
        self._lock = threading.Lock()
        self._stream: FrameStream | None = None

    def request(self, request: dict[str, Any], *, retry: bool = True) -> dict[str, Any]:
        """Send ``request``, return the ``ok`` reply; raise our error for an error reply."""
        with self._lock:
            for attempt in (1, 2):
                fresh = self._stream is None
                stream = self._connect()
                try:
                    stream.write(m.encode(request))
                    reply = m.decode(stream.read())
                except (TimeoutError, FrameTimeout) as error:
                    # Not sent again: a service that stalls would stall twice.
                    self._disconnect()
                    raise errors.SignerUnreachable(
                        f"the signing service at {self.path} did not answer within "
                        f"{self._timeout:.0f} s",
                        "check that the token is present and `agent p11-server` is healthy",
                    ) from error
                except (PeerClosed, FrameError, BrokenPipeError, ConnectionResetError) as error:
                    self._disconnect()
                    if attempt == 2 or fresh or not retry:
                        raise errors.SignerUnreachable(
                            f"the signing service at {self.path} closed the connection "
                            f"({type(error).__name__})",
                            "check `agent p11-server` (journalctl -u agent-p11-server)",
                        ) from error
                    continue  # the service restarted since our last request
                except m.BadRequest as error:
                    self._disconnect()
                    raise errors.SignerProtocolError(
                        f"the signing service at {self.path} sent a malformed answer: {error.cause}"
                    ) from error
                m.raise_for_error(reply)
                return reply
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def _connect(self) -> FrameStream:
        if self._stream is not None:
            return self._stream
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(self._timeout)
        try:
            conn.connect(str(self.path))
        except FileNotFoundError:
            conn.close()
            raise errors.SignerUnreachable(
                f"no signing service socket at {self.path}",
                "start it (systemctl start agent-p11-server.socket, or `agent p11-server`), "
                "or fix device.cryptoki.socket_path",
            ) from None
        except ConnectionRefusedError:
            conn.close()
            raise errors.SignerUnreachable(
                f"the signing service at {self.path} is not running (connection refused)",
                "start it: systemctl start agent-p11-server (or run `agent p11-server`)",
            ) from None
        except PermissionError:
            conn.close()
            raise errors.SignerUnreachable(
                f"permission denied on the signing service socket {self.path}",
                "run the agent as a user in the socket's group (p11_server.socket_group)",
            ) from None
        stream = FrameStream(conn, idle_timeout=self._timeout, frame_timeout=self._timeout)
        try:
            stream.write(m.encode({"op": "hello", "versions": list(m.VERSIONS)}))
            reply = m.decode(stream.read())
        except (OSError, PeerClosed, FrameError, m.BadRequest) as error:
            conn.close()
            raise errors.SignerUnreachable(
                f"the signing service at {self.path} did not answer hello ({error})",
                "check `agent p11-server` is running and of the same edgeagent version",
            ) from error
        try:
            m.raise_for_error(reply)
        except errors.AgentError:
            conn.close()
            raise
        self._stream = stream
        return stream

    def _disconnect(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

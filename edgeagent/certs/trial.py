"""Try a certificate before trusting it: TLS handshake + CONNECT/CONNACK, then goodbye.

    seconds = try_certificate(endpoint)      # endpoint.tls holds the new cert and key

Why not :func:`edgeagent.bridge.probe.probe` (paho): while the bridge runs,
the cloud holds its persistent session under the same client id (Cumulocity
wants client id = CN). Connecting with that id and ``clean_session=0`` takes
the session over: the bridge is disconnected and reconnects by itself (its
own back-off), and the session stays. paho would then read and acknowledge
whatever the cloud had queued for the bridge: a message lost. Here only the
CONNACK is read, and DISCONNECT follows at once; anything the cloud sent
after the CONNACK stays unacknowledged, so MQTT 3.1.1 (4.4) redelivers it to
the bridge's next connection. ``clean_session=1`` would instead discard the
bridge's session, and a different client id could be refused by the cloud.
"""

from __future__ import annotations

import socket
import time

from edgeagent.bridge.probe import unreachable
from edgeagent.errors import BrokerRefused
from edgeagent.mqtt import packets
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.tls.refusal import refused_after_handshake

_REFUSALS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


def try_certificate(endpoint: Endpoint, timeout: float = 60.0) -> float:
    """Seconds from TCP connect to CONNACK; BrokerRefused / TLS errors when it fails."""
    where = f"{endpoint.host}:{endpoint.port}"
    if endpoint.tls is None:
        raise ValueError("a certificate trial needs TLS")
    started = time.perf_counter()
    try:
        raw = socket.create_connection((endpoint.host, endpoint.port), timeout)
    except OSError as error:
        raise unreachable(endpoint, error) from error
    tls = None
    try:
        tls = endpoint.tls.wrap_socket(raw, server_hostname=endpoint.host)
        tls.do_handshake()
        tls.send(
            packets.connect(
                endpoint.client_id, endpoint.keepalive, False, username=endpoint.username
            )
        )
        tls.pending()  # flush, blocking
        reader = packets.PacketReader()
        while True:
            data = tls.recv(4096)
            if not data:
                # Closed after our handshake, before CONNACK: the cloud refused the
                # certificate (how TLS 1.3 servers do it; tls/refusal.py).
                raise refused_after_handshake(endpoint.tls, where)
            for kind, _flags, body in reader.feed(data):
                if kind != packets.CONNACK:
                    continue
                _, code = packets.parse_connack(body)
                if code != 0:
                    raise BrokerRefused(
                        f"{endpoint.name} broker {where} refused the new certificate: "
                        f"{_REFUSALS.get(code, f'return code {code}')}",
                        "check that the certificate's CA is trusted by the cloud",
                    )
                tls.send(packets.DISCONNECT_PACKET)
                tls.pending()
                return time.perf_counter() - started
    except ConnectionError as error:
        if tls is None:
            raise
        # The same refusal, seen as an alert or a reset on the read or write after
        # the handshake (which of the two depends on timing).
        raise refused_after_handshake(endpoint.tls, where) from error
    except TimeoutError as error:
        raise BrokerRefused(
            f"{endpoint.name} broker {where} sent no CONNACK in time: {error}",
            "check that the port is the cloud's MQTT port",
        ) from error
    finally:
        if tls is not None:
            tls.close()
        raw.close()

"""The cloud refusing the device: naming it when the server closes on us.

A server that does not trust the device certificate says so with an alert
(``unknown_ca``, ``bad_certificate``...) and closes. In TLS 1.3 it checks our
certificate only after we have sent our last handshake flight, so what we see
is often not the alert but a reset or a broken pipe on the next write. Either
way the cause is the same, and the user's fix is on the cloud's side (register
the device certificate or its CA), not "[Errno 32] Broken pipe".

    except TLSRemoteAlert as alert:
        raise refusal_from_alert(alert, host) from alert
    except ConnectionError as error:
        raise closed_on_us(conn, host, error) from error
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from tlslite.constants import AlertDescription, ContentType
from tlslite.errors import TLSRemoteAlert

from edgeagent.errors import DeviceCertificateRefused, TlsError, TlsHandshakeFailed

log = logging.getLogger("edgeagent.tls")

# Alerts by which a server refuses the client's certificate (RFC 8446 6.2).
CERTIFICATE_ALERTS = frozenset(
    {
        "bad_certificate",
        "unsupported_certificate",
        "certificate_revoked",
        "certificate_expired",
        "certificate_unknown",
        "unknown_ca",
        "certificate_required",
        "access_denied",
    }
)

REGISTER_FIX = (
    "register the device certificate, or the CA that issued it, with the cloud "
    "(Cumulocity: trusted certificates; Azure IoT Hub: the device identity's CA or "
    "thumbprint; AWS IoT: the certificate, activated and attached to the thing), "
    "or check device.cert_path"
)
_EXPIRED_FIX = "the device certificate has expired (or the gateway's clock is wrong): renew it"
_ALERT_WAIT = 1.0  # seconds to wait for the alert that usually precedes the close


def alert_name(alert: TLSRemoteAlert) -> str:
    return AlertDescription.toRepr(alert.description) or str(alert.description)


def refusal_from_alert(alert: TLSRemoteAlert, host: str) -> DeviceCertificateRefused | None:
    """DeviceCertificateRefused for a certificate alert, else None (another failure)."""
    name = alert_name(alert)
    if name not in CERTIFICATE_ALERTS:
        return None
    return DeviceCertificateRefused(
        f"the cloud ({host}) refused the device certificate with alert {name!r}: "
        "it does not trust the device certificate",
        _EXPIRED_FIX if name == "certificate_expired" else REGISTER_FIX,
    )


def pending_alert(conn: Any) -> TLSRemoteAlert | None:
    """The alert the server sent before it closed, if it can still be read.

    Best effort: the bytes may be gone with a reset. Only used to name a
    failure that has already happened, never to decide that one did.
    """
    with contextlib.suppress(OSError):
        conn.sock.socket.settimeout(_ALERT_WAIT)
    try:
        for _ in conn._getMsg(ContentType.alert):
            break
    except TLSRemoteAlert as alert:
        return alert
    except Exception as error:  # a broken connection can fail in any way here
        log.debug("no alert readable after the close: %s", error)
    return None


def closed_on_us(conn: Any, host: str, error: OSError) -> TlsError:
    """What a reset or broken pipe during the handshake means.

    Once the server's certificate has been checked, the server has ours (TLS
    1.3 sends it in the same flight; TLS 1.2 right after the server's): a close
    from then on is the server refusing the device. Before that, it is a
    server or a middlebox that does not speak our TLS.
    """
    alert = pending_alert(conn)
    if alert is not None:
        refused = refusal_from_alert(alert, host)
        if refused is not None:
            return refused
    how = error.strerror or str(error)
    if getattr(conn, "server_chain_checked", False):
        # The errno ("Broken pipe") says nothing about why; the moment does.
        said = f" with alert {alert_name(alert)!r}" if alert is not None else ""
        return DeviceCertificateRefused(
            f"the cloud ({host}) closed the connection{said} as soon as it had the device "
            "certificate: it does not trust the device certificate",
            REGISTER_FIX,
        )
    return TlsHandshakeFailed(
        f"{host} closed the connection during the TLS handshake ({how.lower()})",
        "check that the port is the cloud's MQTT-over-TLS port and that it accepts "
        "TLS 1.3 or 1.2 with client certificates",
    )


def refused_after_handshake(tls: object, where: str) -> DeviceCertificateRefused:
    """The cloud closed the connection after our handshake, before CONNACK.

    Over TLS 1.3 this is how a cloud refuses the device certificate: it checks
    it after our last handshake flight, then sends an alert and closes, so our
    side of the handshake has already "succeeded". ``tls`` is the context the
    connection was wrapped with (TlsClientContext remembers the alert).
    """
    alert = getattr(getattr(tls, "last_socket", None), "remote_alert", None)
    if isinstance(alert, TLSRemoteAlert):
        refused = refusal_from_alert(alert, where)
        if refused is not None:
            return refused
    said = f" with alert {alert_name(alert)!r}" if isinstance(alert, TLSRemoteAlert) else ""
    return DeviceCertificateRefused(
        f"the cloud ({where}) closed the connection{said} right after the TLS handshake, "
        "before it answered CONNECT: it does not trust the device certificate (or, where the "
        "cloud has connection policies, does not allow this device to connect)",
        REGISTER_FIX,
    )

"""The bridge's health message: what it publishes, retained, on ``agent/bridge/<cloud>/health``.

    {"status": "up", "time": 1764612345.123}
    {"status": "down", "time": ..., "reason": "the cloud (host:8883) refused the device
     certificate with alert 'unknown_ca': ...", "error": "DeviceCertificateRefused",
     "fix": "register the device certificate, or the CA that issued it, ..."}

``reason`` is the cause of the cloud link's last failure, in the user's
words; when that failure is one of our errors, ``error`` names its class
(``edgeagent.errors``, the README's exit-code table) and ``fix`` says what to
do. `agent connect` reads them back (:func:`reported_error`) to fail with the
real error and exit code of the started bridge's connection, not a timeout.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from edgeagent import errors


@dataclass(frozen=True)
class Health:
    status: str  # "up" or "down"
    time: float  # when it was published (time.time())
    reason: str = ""
    error: str = ""  # the class name of our error, when the failure was one
    fix: str = ""

    @property
    def up(self) -> bool:
        return self.status == "up"

    def to_json(self) -> bytes:
        body: dict[str, object] = {"status": self.status, "time": round(self.time, 3)}
        for name in ("reason", "error", "fix"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        return json.dumps(body).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> Health | None:
        """The message, or None for a payload that is not a health message."""
        try:
            body: Any = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(body, dict) or body.get("status") not in ("up", "down"):
            return None
        moment = body.get("time")
        return cls(
            status=body["status"],
            time=float(moment) if isinstance(moment, (int, float)) else 0.0,
            reason=str(body.get("reason", "")),
            error=str(body.get("error", "")),
            fix=str(body.get("fix", "")),
        )


def up() -> Health:
    return Health("up", time.time())


def down(reason: str, error: BaseException | None = None) -> Health:
    """The cloud link is down because of ``reason`` (our error, if ``error`` is one)."""
    if isinstance(error, errors.AgentError):
        return Health("down", time.time(), error.cause, type(error).__name__, error.fix)
    return Health("down", time.time(), reason)


def reported_error(health: Health) -> errors.AgentError | None:
    """The error a "down" message reports, as our error class (None: not one of ours)."""
    if health.up or not health.error:
        return None
    cls = getattr(errors, health.error, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.AgentError)):
        return None
    # Every class takes (cause, fix) through AgentError, whatever its own __init__ wants.
    error = cls.__new__(cls)
    errors.AgentError.__init__(error, health.reason, health.fix)
    return error

"""One of the bridge's two broker connections: its session and its reconnect schedule.

    link = BrokerLink(session, "cloud")      # the name `agent status` knows it by
    delay = link.schedule_retry()            # a connect failed or the link dropped
    link.connected()                         # CONNACK: the next outage is retried at once

The back-off doubles with each failed connect (up to MAX_BACKOFF) and starts
again from MIN_BACKOFF at each CONNACK: a link that was up, however briefly,
is retried at once when it drops. Jitter keeps a fleet of gateways from
reconnecting in lockstep. Used from the bridge's thread only.
"""

from __future__ import annotations

import random
import time
from typing import Generic, TypeVar

from edgeagent.bridge.connector import BackgroundConnect
from edgeagent.mqtt.session import MqttSession

MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0

Token = TypeVar("Token")


class BrokerLink(Generic[Token]):
    def __init__(self, session: MqttSession[Token], name: str) -> None:
        self.session = session
        self.name = name  # status_file.CLOUD_LINK or LOCAL_LINK
        self.retry_at = 0.0  # monotonic: the next connect from then on
        self.backoff = MIN_BACKOFF
        self.reason = "not connected yet"
        self.error: BaseException | None = None  # what made the last connect fail
        self.events = 0  # what the selector watches for now
        self.connecting: BackgroundConnect[Token] | None = None

    def schedule_retry(self) -> float:
        """Set when to connect next; the delay before jitter (what the log announces)."""
        delay = self.backoff
        self.retry_at = time.monotonic() + delay * random.uniform(0.8, 1.2)  # noqa: S311
        self.backoff = min(delay * 2, MAX_BACKOFF)
        return delay

    def connected(self) -> None:
        self.backoff = MIN_BACKOFF
        self.error = None

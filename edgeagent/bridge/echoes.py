"""Both-way rules without loops: recognise the bridge's own messages coming back.

    echoes = ExpectedEchoes(rules)           # only if rules.may_echo
    if echoes.is_echo(from_local, message.topic, message.payload):
        ...                                  # ack it, forward nothing
    ...                                      # forward the message as `topic`, then:
    echoes.sent(to_local, message.topic, topic, message.payload, side_up=target.up)

An MQTT 3.1.1 broker delivers a message to every subscription that matches
it, the publisher's own included (there is no "no local"). Under a both-way
rule the bridge subscribes, on each side, to the very topics it publishes
there: a message from the cloud on ``$aws/things/d/shadow/x`` is published
locally on ``aws/shadow/x``, the local broker hands it straight back to the
bridge, which would send it to the cloud again, which hands it back again:
forever, and every local subscriber sees it each time round.

So when the bridge forwards a message to a topic that the rules would map
straight back to where it came from, it expects that topic and payload back
from the side it sent it to, and drops one such arrival. A one-topic rename
(AWS's ``aws/test-connection`` out, its echo in as ``aws/connection-success``)
does not map back and is not remembered: that echo is the answer we want.

The local broker is spared this when it is mosquitto: the bridge connects to
it as a mosquitto bridge (protocol level 0x84), whose subscriptions get
no-local, and expects echoes from the cloud side only (`Bridge.on_message`);
a local broker that refuses that protocol gets plain MQTT 3.1.1 and both
sides are watched. An echo the broker never sends (MQTT 5 no-local, a QoS 0
copy lost) leaves an entry behind. Entries expire `WINDOW` seconds
after they were sent (a message that waited for its side to come back:
after that side next delivers anything), and at most `LIMIT` are kept per
side, so a stale one can only ever swallow one identical message (same
topic, same payload) within the window. An echo that arrives later than
that is forwarded once more and is then caught on its way back: a late
echo costs one duplicate, never a loop (the one case left: a message in
flight when its side dropped, back after an outage longer than the window).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque

from edgeagent.bridge.rules import TopicRules

WINDOW = 30.0  # seconds an expected echo is waited for
LIMIT = 1000  # expected echoes kept per side (the oldest go first)

_Key = tuple[str, int, int]  # topic, payload length, payload hash: no payload copies kept


class _Side:
    """The echoes expected from one broker."""

    def __init__(self) -> None:
        self.by_key: dict[_Key, deque[int]] = {}  # sequence numbers, oldest first
        # (deadline, key), oldest first; no deadline yet: sent while the side was down.
        self.by_seq: OrderedDict[int, tuple[float | None, _Key]] = OrderedDict()
        self.undated: list[int] = []

    def add(self, key: _Key, seq: int, deadline: float | None) -> None:
        self.by_key.setdefault(key, deque()).append(seq)
        self.by_seq[seq] = (deadline, key)
        if deadline is None:
            self.undated.append(seq)

    def date(self, deadline: float) -> None:
        """The side is back: start the clock of what was sent to it while it was away."""
        for seq in self.undated:
            entry = self.by_seq.get(seq)
            if entry is not None:
                self.by_seq[seq] = (deadline, entry[1])
        self.undated.clear()

    def take(self, key: _Key) -> bool:
        """Cross off the oldest entry for ``key``; False if there is none."""
        waiting = self.by_key.get(key)
        if not waiting:
            return False
        del self.by_seq[waiting.popleft()]
        if not waiting:
            del self.by_key[key]
        return True

    def drop_oldest(self) -> None:
        _, (_, key) = self.by_seq.popitem(last=False)
        # The oldest entry overall is also the oldest of its key.
        waiting = self.by_key[key]
        waiting.popleft()
        if not waiting:
            del self.by_key[key]

    def expire(self, now: float) -> None:
        while self.by_seq:
            deadline = next(iter(self.by_seq.values()))[0]
            if deadline is None or deadline > now:
                return
            self.drop_oldest()


class ExpectedEchoes:
    """The messages the bridge sent that a broker is about to hand back to it."""

    def __init__(self, rules: TopicRules, window: float | None = None, limit: int = LIMIT) -> None:
        self._rules = rules
        self._window = WINDOW if window is None else window
        self._limit = limit
        self._sides = {True: _Side(), False: _Side()}  # keyed by "is the local side"
        self._returns: dict[tuple[bool, str], bool] = {}
        self._seq = itertools.count()
        self.dropped = 0  # echoes recognised and not forwarded

    def sent(
        self, to_local: bool, source_topic: str, topic: str, payload: bytes, *, side_up: bool
    ) -> None:
        """The bridge published ``payload`` on ``topic``, taken from ``source_topic``.

        ``side_up``: the target is connected. A message queued for a side that
        is down is sent when it comes back, however long that takes: its
        window starts when that side next delivers anything.
        """
        if not self._maps_back(to_local, source_topic, topic):
            return
        side = self._sides[to_local]
        now = time.monotonic()
        side.expire(now)
        while len(side.by_seq) >= self._limit:
            side.drop_oldest()
        deadline = now + self._window if side_up else None
        side.add((topic, len(payload), hash(payload)), next(self._seq), deadline)

    def is_echo(self, from_local: bool, topic: str, payload: bytes) -> bool:
        """Whether this arrival is one we expect back; if so, it is crossed off."""
        side = self._sides[from_local]
        if not side.by_seq:
            return False
        now = time.monotonic()
        if side.undated:
            side.date(now + self._window)
        side.expire(now)
        if not side.take((topic, len(payload), hash(payload))):
            return False
        self.dropped += 1
        return True

    def waiting(self, local: bool) -> int:
        """How many echoes are expected from the local (True) or the cloud side."""
        return len(self._sides[local].by_seq)

    def _maps_back(self, to_local: bool, source_topic: str, topic: str) -> bool:
        # The mapping is a function of the source topic: cache on it.
        cache_key = (to_local, source_topic)
        try:
            return self._returns[cache_key]
        except KeyError:
            pass
        back = self._rules.to_remote(topic) if to_local else self._rules.to_local(topic)
        if len(self._returns) > 10_000:
            self._returns.clear()  # bounded: topics with ids in them are unbounded
        returns = back == source_topic
        self._returns[cache_key] = returns
        return returns

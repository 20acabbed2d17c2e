"""How long each step of starting and stopping a bridge may take, in one place.

They nest: each waiter waits longer than everything it waits for, so a
command never reports a failure while the host still carries its request
out (the host itself answers each request in a thread of its own, so no
request waits behind another cloud's start; only one cloud's own start and
stop are serialised)::

    CLOUD_START  <  CONTROL_START  <  JOIN + CONTROL_START + INTERPRETER  =  RUN_START
    CLOUD_STOP   <  CONTROL_STOP

- CLOUD_START: the host's wait for a cloud's thread (certificate, key, login).
- CONTROL_START: a client's wait for the host's answer to a start request.
- JOIN: how long a start keeps asking while a host is binding its socket or exiting.
- RUN_START: `agent connect`'s wait for `agent bridge run --host`, which
  starts an interpreter, loads the configuration, then joins and asks.
- CLOUD_STOP: the host's wait for a cloud's thread to stop.
- CONTROL_STOP: a client's wait for the answer to a stop (or list) request,
  and for a host that lost its last cloud to exit.
"""

from __future__ import annotations

CLOUD_START = 25.0
CONTROL_START = CLOUD_START + 5.0
JOIN = 10.0
INTERPRETER = 10.0
RUN_START = JOIN + CONTROL_START + INTERPRETER
CLOUD_STOP = 12.0
CONTROL_STOP = CLOUD_STOP + 3.0
RETRY_FIRST = 5.0
"""The host retries a cloud whose start failed for a reason that may pass (a
signing service restarting, a USB token not yet there) after this, then
twice as long each time, up to RETRY_MAX (as systemd's RestartSec=5 did)."""
RETRY_MAX = 300.0
POLL = 0.2
"""How often a waiting loop (the host's accept, a foreground run) looks again."""

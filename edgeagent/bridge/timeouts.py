"""How long each step of starting and stopping a bridge may take, in one place.

They nest: each waiter waits longer than everything it waits for, so a
command never reports a failure while the host still carries its request
out. The host answers each request in a thread of its own, so no request
waits behind another cloud's start; one cloud's start, restart and stop are
serialised by that cloud's lock, and a request may wait for it (N4)::

    CLOUD_STOP + CLOUD_START = START_HELD    (the longest a start holds the lock)
    START_HELD + CLOUD_STOP + 3 = CONTROL_STOP
    START_HELD + CLOUD_STOP + START_HELD + 5 = CONTROL_START   (a start, or a restart)
    JOIN + CONTROL_START + CONTROL_STOP + INTERPRETER = RUN_START

- CLOUD_START: the host's wait for a cloud's thread (certificate, key, login).
- START_HELD: a start first waits (CLOUD_STOP) for an abandoned start of the
  same cloud still stuck on the token, then for its own.
- CONTROL_START: a client's wait for the host's answer to a start or restart
  request (the cloud's lock, the restart's stop, the start).
- JOIN: how long a start keeps asking while a host is binding its socket or exiting.
- RUN_START: `agent connect`'s wait for `agent bridge run --host`, which
  starts an interpreter, loads the configuration, then joins and asks (and
  withdraws its start when the host does not answer in time).
- CLOUD_STOP: the host's wait for a cloud's thread to stop.
- CONTROL_STOP: a client's wait for the answer to a stop request (the
  cloud's lock, then the stop), and for a host that lost its last cloud to exit.
- CONTROL_LIST: a client's wait for the answer to a list request (no lock).
"""

from __future__ import annotations

CLOUD_START = 25.0
CLOUD_STOP = 12.0
START_HELD = CLOUD_STOP + CLOUD_START
CONTROL_STOP = START_HELD + CLOUD_STOP + 3.0
CONTROL_START = START_HELD + CLOUD_STOP + START_HELD + 5.0
CONTROL_LIST = 5.0
PROCESS_STOP = CLOUD_STOP + 3.0
"""A bridge process's (or a host's that lost its last cloud) wait to exit."""
JOIN = 10.0
INTERPRETER = 10.0
RUN_START = JOIN + CONTROL_START + CONTROL_STOP + INTERPRETER
RETRY_FIRST = 5.0
"""The host retries a cloud whose start failed for a reason that may pass (a
signing service restarting, a USB token not yet there) after this, then
twice as long each time, up to RETRY_MAX (as systemd's RestartSec=5 did)."""
RETRY_MAX = 300.0
POLL = 0.2
"""How often a waiting loop (the host's accept, a foreground run) looks again."""

"""Bridge throughput, local -> cloud, 100-byte payloads, with fast C clients.

The publisher (`mosquitto_pub -l`, fed N lines on stdin) and the subscriber
(`mosquitto_sub -C N -F '%U %p'` on the cloud, which prints each message's
wall-clock receive time) are separate processes from the bridge, so the
figure is the bridge's, not a Python client's. msgs/s = received / (time of
the last message at the cloud - time the publisher started).
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import time
from pathlib import Path
from typing import Any

from integration.bench.bridges import CLOUD_TOPIC, LOCAL_TOPIC, BridgeUnderTest
from integration.bench.testbed import BenchError, Testbed, stop_process, wait_until

PAYLOAD_BYTES = 100
IDLE_END = 2.0  # seconds without a new message at the cloud: the run is over

_runs = itertools.count(1)


def payload_file(path: Path, tag: str, count: int) -> Path:
    """``count`` lines of exactly PAYLOAD_BYTES bytes: tag, sequence number, padding."""
    with path.open("w") as out:
        for seq in range(count):
            head = f"{tag} {seq:08d} "
            out.write(head + "x" * (PAYLOAD_BYTES - len(head)) + "\n")
    return path


def run(
    bed: Testbed, bridge: BridgeUnderTest, qos: int, count: int, timeout: float
) -> dict[str, Any]:
    """Push ``count`` messages through ``bridge`` at ``qos``; msgs/s and lost."""
    n = next(_runs)
    tag = f"run{n:03d}"
    work = bed.root / f"throughput-{bridge.name}-{n}"
    work.mkdir()
    lines = payload_file(work / "payload.txt", tag, count)
    received_path = work / "received.txt"
    sub_id = f"bench-sub-{n}"
    app = bed.cloud_app
    with received_path.open("wb") as out:
        subscriber = subprocess.Popen(
            [
                "mosquitto_sub",
                *("-h", "localhost", "-p", str(bridge.cloud.tls_port)),
                *("--cafile", str(bed.pki.ca.cert_path)),
                *("--cert", str(app.cert_path), "--key", str(app.key_path)),
                *("-i", sub_id, "-t", CLOUD_TOPIC, "-q", str(qos), "-C", str(count)),
                *("-F", "%U %p"),
            ],
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    publisher: subprocess.Popen[bytes] | None = None
    try:
        wait_until(
            lambda: f"{sub_id} {qos} {CLOUD_TOPIC}" in bridge.cloud.log_text(),
            15,
            "cloud subscriber subscribed",
        )
        with lines.open("rb") as stdin:
            started_ns = time.time_ns()
            publisher = subprocess.Popen(
                [
                    "mosquitto_pub",
                    *("-h", bridge.local.host, "-p", str(bridge.local.port)),
                    *("-i", f"bench-pub-{n}", "-t", LOCAL_TOPIC, "-q", str(qos), "-l"),
                ],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        timed_out, published_ns = _wait(subscriber, publisher, received_path, timeout)
    finally:
        stop_process(publisher)
        stop_process(subscriber)
    stamps = []
    for line in received_path.read_bytes().splitlines():
        stamp, _, body = line.partition(b" ")
        if body.startswith(tag.encode()):
            stamps.append(float(stamp))
    received = len(stamps)
    if received == 0:
        raise BenchError(f"{bridge.name} forwarded nothing at QoS {qos}")
    elapsed = stamps[-1] - started_ns / 1e9
    return {
        "bridge": bridge.name,
        "qos": qos,
        "sent": count,
        "received": received,
        "lost": count - received,
        "seconds": elapsed,
        "msgs_per_s": received / elapsed,
        "timed_out": timed_out,
        # when mosquitto_pub had written everything (about, polled every 10 ms)
        "publisher_seconds": None if published_ns is None else (published_ns - started_ns) / 1e9,
    }


def _wait(
    subscriber: subprocess.Popen[bytes],
    publisher: subprocess.Popen[bytes],
    received: Path,
    timeout: float,
) -> tuple[bool, int | None]:
    """Until the subscriber has all (exits) or nothing arrived for IDLE_END s.

    Returns (cut off by ``timeout``, time.time_ns() when the publisher exited).
    """
    deadline = time.monotonic() + timeout
    size, quiet_since = -1, time.monotonic()
    published_ns: int | None = None
    while subscriber.poll() is None:
        now = time.monotonic()
        if published_ns is None and publisher.poll() is not None:
            published_ns = time.time_ns()
        if now >= deadline:
            return True, published_ns
        current = received.stat().st_size
        if current != size:
            size, quiet_since = current, now
        elif published_ns is not None and now - quiet_since >= IDLE_END:
            return False, published_ns  # QoS 0: the rest was dropped, nothing more will come
        time.sleep(0.01)
    if published_ns is None:
        # mosquitto_pub may still be disconnecting after the last PUBACK.
        with contextlib.suppress(subprocess.TimeoutExpired):
            publisher.wait(max(0.1, deadline - time.monotonic()))
            published_ns = time.time_ns()
    return False, published_ns

"""Bridge latency at a steady rate: p50 / p99 from local publish to cloud receipt.

Two child processes of this module, so neither shares a GIL with the other
or with the harness:

    python -m integration.bench.latency pub HOST PORT TOPIC RATE SECONDS QOS
    python -m integration.bench.latency sub HOST PORT TOPIC COUNT TIMEOUT QOS OUT CA CERT KEY READY

The publisher paces messages on ``time.monotonic_ns()`` and puts the send
time in the payload; the subscriber (on the cloud, over Python ``ssl``)
subtracts it from its own ``time.monotonic_ns()`` at receipt. CLOCK_MONOTONIC
is system-wide on Linux, so both processes read the same clock. The first
WARMUP_FRACTION of the messages are sent but not counted.
"""

from __future__ import annotations

import itertools
import json
import os
import ssl
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PAYLOAD_BYTES = 100
WARMUP_FRACTION = 0.1

_runs = itertools.count(1)


# -- the two child processes ----------------------------------------------------------


def _payload(seq: int, sent_ns: int) -> bytes:
    head = f"{seq:08d} {sent_ns:020d} ".encode()
    return head + b"x" * (PAYLOAD_BYTES - len(head))


def publish(host: str, port: int, topic: str, rate: float, seconds: float, qos: int) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-lat-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    # No network thread: without one, paho writes a PUBLISH from publish()
    # itself, so the time in the payload is the time it went on the wire,
    # and no second thread competes for the GIL. loop() between messages
    # reads the PUBACKs.
    period_ns = int(1e9 / rate)
    count = int(rate * seconds)
    start = time.monotonic_ns() + 50_000_000
    for seq in range(count):
        due = start + seq * period_ns
        while (ahead := due - time.monotonic_ns()) > 200_000:
            client.loop(timeout=(ahead - 100_000) / 1e9)
        while due > time.monotonic_ns():
            pass
        client.publish(topic, _payload(seq, time.monotonic_ns()), qos)
    deadline = time.monotonic() + 10
    while client.want_write() or (qos and time.monotonic() < deadline and _inflight(client)):
        client.loop(timeout=0.01)
    client.disconnect()


def _inflight(client: Any) -> bool:
    return bool(getattr(client, "_out_messages", None))


def subscribe(
    host: str,
    port: int,
    topic: str,
    count: int,
    timeout: float,
    qos: int,
    out: Path,
    tls_files: tuple[str, str, str],
    ready: Path,
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    ca, cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(ca)
    context.load_cert_chain(cert, key)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-lat-sub-{os.getpid()}")
    client.tls_set_context(context)
    latencies: dict[int, int] = {}
    done = threading.Event()

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        now = time.monotonic_ns()
        seq_text, sent_text, _ = message.payload.split(b" ", 2)
        latencies[int(seq_text)] = now - int(sent_text)
        if len(latencies) >= count:
            done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, qos)
    client.on_subscribe = lambda *_: ready.touch()
    client.connect(host, port)
    client.loop_start()
    done.wait(timeout)
    client.loop_stop()
    client.disconnect()
    out.write_text(json.dumps({"latencies_ns": latencies}))


# -- the harness side -----------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``samples``."""
    index = max(0, min(len(samples) - 1, round(fraction * len(samples)) - 1))
    return samples[index]


def run(bed: Any, bridge: Any, rate: float, seconds: float, qos: int = 1) -> dict[str, Any]:
    """Latency through ``bridge`` (see `bridges`) at ``rate`` msg/s for ``seconds``."""
    from integration.bench.bridges import CLOUD_TOPIC, LOCAL_TOPIC
    from integration.bench.testbed import BenchError, stop_process, wait_until

    n = next(_runs)
    work = bed.root / f"latency-{bridge.name}-{n}"
    work.mkdir()
    count = int(rate * seconds)
    out, ready = work / "latencies.json", work / "subscribed"
    app = bed.cloud_app
    python = [sys.executable, "-m", "integration.bench.latency"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    budget = seconds + 30
    subscriber = subprocess.Popen(
        [
            *python,
            "sub",
            "localhost",
            str(bridge.cloud.tls_port),
            CLOUD_TOPIC,
            str(count),
            str(budget),
            str(qos),
            str(out),
            str(bed.pki.ca.cert_path),
            str(app.cert_path),
            str(app.key_path),
            str(ready),
        ],
        env=env,
    )
    publisher = None
    try:
        wait_until(ready.exists, 20, "latency subscriber subscribed")
        publisher = subprocess.Popen(
            [
                *python,
                "pub",
                bridge.local.host,
                str(bridge.local.port),
                LOCAL_TOPIC,
                str(rate),
                str(seconds),
                str(qos),
            ],
            env=env,
        )
        publisher.wait(budget)
        subscriber.wait(budget)
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"latency run through {bridge.name} did not finish") from error
    finally:
        stop_process(publisher)
        stop_process(subscriber)
    if not out.exists():
        raise BenchError(f"latency subscriber for {bridge.name} wrote no results")
    raw = {int(k): v for k, v in json.loads(out.read_text())["latencies_ns"].items()}
    warmup = int(count * WARMUP_FRACTION)
    samples = sorted(v / 1e6 for k, v in raw.items() if k >= warmup)
    if not samples:
        raise BenchError(f"no latency samples through {bridge.name}")
    return {
        "bridge": bridge.name,
        "qos": qos,
        "rate": rate,
        "seconds": seconds,
        "sent": count,
        "received": len(raw),
        "counted": len(samples),
        "p50_ms": statistics.median(samples),
        "p90_ms": percentile(samples, 0.90),
        "p99_ms": percentile(samples, 0.99),
        "max_ms": samples[-1],
        "mean_ms": statistics.fmean(samples),
    }


def main(argv: list[str]) -> None:
    role, host, port, topic, *rest = argv
    if role == "pub":
        rate, seconds, qos = rest
        publish(host, int(port), topic, float(rate), float(seconds), int(qos))
    elif role == "sub":
        count, timeout, qos, out, ca, cert, key, ready = rest
        subscribe(
            host,
            int(port),
            topic,
            int(count),
            float(timeout),
            int(qos),
            Path(out),
            (ca, cert, key),
            Path(ready),
        )
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

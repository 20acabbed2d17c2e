"""ECDSA P-256 signatures per second: through `agent p11-server` vs in-process.

- direct: `open_module_signer` in the harness process, 1 and 4 threads
  sharing the one signer (python-pkcs11 releases the GIL during C_Sign;
  the signer serialises operations on its session).
- socket: `SocketSigner` clients of one `agent p11-server`; 1 client, and 4
  clients in 4 separate processes (so the clients' own Python does not
  share a GIL and the service is what is measured):

    python -m integration.bench.signing worker SOCKET KEY_URI COUNT

  A worker signs a few warm-up digests, prints "ready", waits for a line on
  stdin, signs COUNT digests and prints {"start_ns", "end_ns", "count"}.

Rate = all signatures / (last end - first start), on CLOCK_MONOTONIC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edgeagent.signing.signer import Signer

WARMUP = 20


def _sign_many(signer: Signer, count: int) -> tuple[int, int]:
    digest = os.urandom(32)
    start = time.monotonic_ns()
    for _ in range(count):
        signer.sign_digest(digest, "sha256", "ecdsa")
    return start, time.monotonic_ns()


def in_threads(signer: Signer, threads: int, per_thread: int) -> dict[str, Any]:
    """``threads`` threads each sign ``per_thread`` digests with the one ``signer``."""
    _sign_many(signer, WARMUP)
    spans: list[tuple[int, int]] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        spans.append(_sign_many(signer, per_thread))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    return _rate(spans, per_thread, threads, "threads")


def in_processes(socket_path: Path, key_uri: str, clients: int, per_client: int) -> dict[str, Any]:
    """``clients`` worker processes, each its own SocketSigner, all started together."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "integration.bench.signing",
                "worker",
                str(socket_path),
                key_uri,
                str(per_client),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(clients)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError("signing worker did not start")
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        spans = []
        for worker in workers:
            out, _ = worker.communicate(timeout=120)
            done = json.loads(out)
            spans.append((done["start_ns"], done["end_ns"]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(5)
    return _rate(spans, per_client, clients, "processes")


def _rate(spans: list[tuple[int, int]], each: int, parallel: int, how: str) -> dict[str, Any]:
    if len(spans) != parallel:
        raise RuntimeError(f"only {len(spans)} of {parallel} signers finished")
    seconds = (max(end for _, end in spans) - min(start for start, _ in spans)) / 1e9
    total = each * parallel
    return {
        "clients": parallel,
        "as": how,
        "signatures": total,
        "seconds": seconds,
        "per_s": total / seconds,
    }


def worker(socket_path: str, key_uri: str, count: int) -> None:
    from edgeagent.signing.socket_signer import open_socket_signer

    signer = open_socket_signer(Path(socket_path), key_uri)
    _sign_many(signer, WARMUP)
    print("ready", flush=True)
    sys.stdin.readline()
    start, end = _sign_many(signer, count)
    signer.close()
    print(json.dumps({"start_ns": start, "end_ns": end, "count": count}), flush=True)


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role != "worker":
        raise SystemExit(f"unknown role {role!r}")
    worker(rest[0], rest[1], int(rest[2]))

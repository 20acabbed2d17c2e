"""Benchmarks: the agent side by side with what a user would pick instead.

    python -m integration.bench --size full --out bench-results.json

One run, one machine, every broker and service started here on free
loopback ports; each figure is reported as a ratio to its anchor measured
in the same run (absolute times on a shared machine are noise). What each
row means: docs/benchmarks.md.

- `handshake`: TLS 1.3 + CONNACK, agent (module / socket mode) vs Python
  ``ssl`` and `mosquitto_pub`; `handshake_tls12`: the same over TLS 1.2
  (module mode vs Python ``ssl``), alone with ``--only handshake-tls12``.
- `throughput`: `agent bridge run c8y` vs mosquitto's own bridge, QoS 0/1.
- `latency`: p50 / p99 at a steady rate through both bridges.
- `signing`: signatures/s through `agent p11-server` vs in-process.
- resident memory of both bridge processes after the throughput runs.
- `cli_time`: `agent config get` vs `python -c pass`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Size:
    handshake_rounds: int
    messages: int  # per throughput run
    throughput_timeout: float  # seconds, per run
    latency_rate: float  # msg/s
    latency_seconds: float
    signatures: int  # per client (or thread) with 1 client; split across 4
    cli_runs: int


SIZES = {
    "full": Size(
        handshake_rounds=50,
        messages=20_000,
        throughput_timeout=120,
        latency_rate=1000,
        latency_seconds=10,
        signatures=4000,
        cli_runs=20,
    ),
    "smoke": Size(
        handshake_rounds=3,
        messages=500,
        throughput_timeout=30,
        latency_rate=1000,
        latency_seconds=1,
        signatures=200,
        cli_runs=3,
    ),
}


def run_all(size: Size, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Every benchmark at ``size``; the raw results (see `report.rows` for the table)."""
    # Imported here so that `import integration.bench` stays cheap.
    from integration.bench import cli_time, clouds, handshake, latency, signing, throughput
    from integration.bench.bridges import AgentBridge, BridgeUnderTest, MosquittoBridge, rss_kib
    from integration.bench.report import machine
    from integration.bench.testbed import Testbed
    from tests.support.softhsm import SOFTHSM_MODULE

    results: dict[str, Any] = {"machine": machine(), "sizes": asdict(size), "seconds": {}}

    def timed(name: str, step: Callable[[], Any]) -> Any:
        import time

        progress(f"{name} ...")
        started = time.monotonic()
        value = step()
        results["seconds"][name] = round(time.monotonic() - started, 2)
        return value

    with Testbed.create() as bed:
        results["handshake"] = timed("handshake", lambda: handshake.run(bed, size.handshake_rounds))
        results["handshake_tls12"] = timed(
            "handshake TLS 1.2", lambda: handshake.run_tls12(bed, size.handshake_rounds)
        )

        def sign() -> dict[str, Any]:
            from edgeagent.signing.module_signer import open_module_signer

            service = bed.p11_server()
            uri = bed.token_key.uri
            direct = open_module_signer(SOFTHSM_MODULE, uri, bed.token.pin)
            try:
                return {
                    "direct_1": signing.in_threads(direct, 1, size.signatures),
                    "direct_4": signing.in_threads(direct, 4, size.signatures // 4),
                    "socket_1": signing.in_processes(service.socket_path, uri, 1, size.signatures),
                    "socket_4": signing.in_processes(
                        service.socket_path, uri, 4, size.signatures // 4
                    ),
                }
            finally:
                direct.close()

        results["signing"] = timed("signing", sign)

        results["throughput"] = {}
        results["latency"] = {}
        results["memory"] = {}
        runs: list[tuple[Callable[[], BridgeUnderTest], tuple[int, ...], bool]] = [
            (lambda: MosquittoBridge(bed), (0, 1), True),
            (lambda: AgentBridge(bed, "off"), (0, 1), True),
            # The key on a token only matters for the handshake: QoS 1 shows it.
            (lambda: AgentBridge(bed, "module"), (1,), False),
            (lambda: AgentBridge(bed, "socket"), (1,), False),
        ]
        for start, qos_levels, with_latency in runs:
            bridge = start()
            try:
                for qos in qos_levels:
                    results["throughput"][f"{bridge.name}_qos{qos}"] = timed(
                        f"throughput {bridge.name} QoS {qos}",
                        lambda b=bridge, q=qos: throughput.run(  # type: ignore[misc]
                            bed, b, q, size.messages, size.throughput_timeout
                        ),
                    )
                results["memory"][bridge.name] = {
                    "pid": bridge.bridge_pid,
                    "rss_kib": rss_kib(bridge.bridge_pid),
                }
                if bridge.name == "agent-socket":
                    service = bed.p11_server().process
                    assert service is not None
                    results["memory"]["p11-server"] = {
                        "pid": service.pid,
                        "rss_kib": rss_kib(service.pid),
                    }
                if with_latency:
                    results["latency"][bridge.name] = timed(
                        f"latency {bridge.name}",
                        lambda b=bridge: latency.run(  # type: ignore[misc]
                            bed, b, size.latency_rate, size.latency_seconds
                        ),
                    )
            finally:
                bridge.stop()

        results["cli"] = timed("cli", lambda: cli_time.run(bed.root / "etc-cli", size.cli_runs))
        results["three_clouds"] = timed("three clouds", lambda: clouds.run(bed, "module"))
    return results


def run_three_clouds_only(
    size: Size, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Just the three-clouds memory row (``--only three-clouds``)."""
    from integration.bench import clouds
    from integration.bench.report import machine
    from integration.bench.testbed import Testbed

    results: dict[str, Any] = {"machine": machine(), "sizes": asdict(size), "seconds": {}}
    with Testbed.create() as bed:
        progress("three clouds ...")
        results["three_clouds"] = clouds.run(bed, "module")
    return results


def run_tls12_only(size: Size, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Just the TLS 1.2 handshake row (``--only handshake-tls12``)."""
    from integration.bench import handshake
    from integration.bench.report import machine
    from integration.bench.testbed import Testbed

    results: dict[str, Any] = {"machine": machine(), "sizes": asdict(size), "seconds": {}}
    with Testbed.create() as bed:
        progress("handshake TLS 1.2 ...")
        results["handshake_tls12"] = handshake.run_tls12(bed, size.handshake_rounds)
    return results

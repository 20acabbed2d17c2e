"""Turn raw results into the table rows: figure, agent, anchor, ratio, target, met."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Row:
    figure: str
    agent: str
    anchor: str
    ratio: float
    target: str
    met: bool | None  # None: informational row, no target

    def cells(self) -> list[str]:
        met = "—" if self.met is None else ("yes" if self.met else "**no**")
        return [self.figure, self.agent, self.anchor, f"{self.ratio:.2f}x", self.target, met]


HEADER = ["figure", "agent", "anchor", "ratio", "target", "met"]


def tls12_rows(results: dict[str, Any]) -> list[Row]:
    """The TLS 1.2 handshake row (also all of an ``--only handshake-tls12`` run)."""
    hs = results["handshake_tls12"]
    module_ms, ssl_ms = hs["agent_module"]["median_ms"], hs["python_ssl"]["median_ms"]
    return [
        Row(
            f"TLS 1.2 handshake + CONNACK, median of {hs['python_ssl']['rounds']}: module mode, "
            f"SoftHSM key ({hs['agent_module']['negotiated']})",
            f"{module_ms:.1f} ms",
            f"Python ssl (TLS 1.2), key file: {ssl_ms:.1f} ms",
            module_ms / ssl_ms,
            "≤ 1.5x",
            module_ms / ssl_ms <= 1.5,
        )
    ]


THREE_CLOUDS_TARGET_MB = 60


def three_clouds_rows(results: dict[str, Any]) -> list[Row]:
    """c8y, az and aws connected at once: the bridge processes' summed PSS."""
    three = results["three_clouds"]
    mb = three["pss_kib"] * 1024 / 1e6
    rss_mb = three["rss_kib"] * 1024 / 1e6
    return [
        Row(
            f"Three clouds connected (c8y, az, aws; {three['mode']} mode, SoftHSM key): the "
            f"sum of the bridge processes' PSS (/proc/<pid>/smaps_rollup), "
            f"{three['processes']} process(es)",
            f"{mb:.1f} MB",
            f"sum of their VmRSS: {rss_mb:.1f} MB",
            mb / rss_mb,
            f"≤ {THREE_CLOUDS_TARGET_MB} MB",
            mb <= THREE_CLOUDS_TARGET_MB,
        )
    ]


def rows(results: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    hs = results["handshake"]["nodelay_broker"]
    ssl_ms = hs["python_ssl"]["median_ms"]
    n = hs["python_ssl"]["rounds"]
    for key, what in (
        ("agent_module", "module mode, SoftHSM key"),
        ("agent_socket", "socket mode, via p11-server"),
    ):
        ms = hs[key]["median_ms"]
        out.append(
            Row(
                f"TLS 1.3 handshake + CONNACK, median of {n}: {what}",
                f"{ms:.1f} ms",
                f"Python ssl, key file: {ssl_ms:.1f} ms",
                ms / ssl_ms,
                "≤ 1.5x",
                ms / ssl_ms <= 1.5,
            )
        )
    file_ms = hs["agent_file"]["median_ms"]
    out.append(
        Row(
            f"TLS 1.3 handshake + CONNACK, median of {n}: agent stack, key file",
            f"{file_ms:.1f} ms",
            f"Python ssl, key file: {ssl_ms:.1f} ms",
            file_ms / ssl_ms,
            "(info)",
            None,
        )
    )
    module_ms = hs["agent_module"]["median_ms"]
    pub_ms = hs["mosquitto_pub"]["median_ms"]
    out.append(
        Row(
            f"TLS 1.3 handshake + CONNACK, median of {n}: module mode vs a whole "
            "`mosquitto_pub -q 1` run (process start included)",
            f"{module_ms:.1f} ms",
            f"mosquitto_pub, key file: {pub_ms:.1f} ms",
            module_ms / pub_ms,
            "(info)",
            None,
        )
    )
    out += tls12_rows(results)
    default = results["handshake"]["default_broker"]
    module_ms, ssl_ms = default["agent_module"]["median_ms"], default["python_ssl"]["median_ms"]
    out.append(
        Row(
            f"Same, module mode, against a broker with mosquitto's default Nagle "
            f"(~40 ms delayed-ACK stall for every stack), median of {n}",
            f"{module_ms:.1f} ms",
            f"Python ssl, key file: {ssl_ms:.1f} ms",
            module_ms / ssl_ms,
            "(info)",
            None,
        )
    )

    tp = results["throughput"]
    anchor1 = tp["mosquitto_qos1"]
    for key, what in (
        ("agent-off_qos1", "key file"),
        ("agent-module_qos1", "SoftHSM key"),
        ("agent-socket_qos1", "SoftHSM key via p11-server"),
    ):
        run = tp[key]
        ratio = run["msgs_per_s"] / anchor1["msgs_per_s"]
        out.append(
            Row(
                f"Bridge throughput, QoS 1, {run['sent']} x 100 B, local → cloud ({what})",
                f"{run['msgs_per_s']:,.0f} msg/s, {run['lost']} lost",
                f"mosquitto bridge: {anchor1['msgs_per_s']:,.0f} msg/s, {anchor1['lost']} lost",
                ratio,
                "≥ 0.5x, 0 lost",
                ratio >= 0.5 and run["lost"] == 0,
            )
        )
    run, anchor0 = tp["agent-off_qos0"], tp["mosquitto_qos0"]
    out.append(
        Row(
            f"Bridge throughput, QoS 0, {run['sent']} x 100 B, local → cloud (key file)",
            f"{run['msgs_per_s']:,.0f} msg/s, {run['lost']} lost",
            f"mosquitto bridge: {anchor0['msgs_per_s']:,.0f} msg/s, {anchor0['lost']} lost",
            run["msgs_per_s"] / anchor0["msgs_per_s"],
            "(info)",
            None,
        )
    )

    lat = results["latency"]
    agent, anchor = lat["agent-off"], lat["mosquitto"]
    for pct, target in (("p50", None), ("p99", 2.0)):
        a, m = agent[f"{pct}_ms"], anchor[f"{pct}_ms"]
        out.append(
            Row(
                f"Bridge latency {pct}, {agent['rate']:.0f} msg/s for {agent['seconds']:g} s, "
                f"QoS {agent['qos']}",
                f"{a:.2f} ms",
                f"mosquitto bridge: {m:.2f} ms",
                a / m,
                "(info)" if target is None else f"≤ {target:g}x",
                None if target is None else a / m <= target,
            )
        )

    sig = results["signing"]
    for clients in (1, 4):
        s, d = sig[f"socket_{clients}"], sig[f"direct_{clients}"]
        ratio = s["per_s"] / d["per_s"]
        out.append(
            Row(
                f"ECDSA P-256 signatures/s, {clients} concurrent client(s)",
                f"p11-server, {clients} client process(es): {s['per_s']:,.0f}/s",
                f"in-process module, {clients} thread(s): {d['per_s']:,.0f}/s",
                ratio,
                "≥ 0.8x",
                ratio >= 0.8,
            )
        )

    mem = results["memory"]
    anchor_mb = mem["mosquitto"]["rss_kib"] * 1024 / 1e6
    service_mb = mem["p11-server"]["rss_kib"] * 1024 / 1e6
    for key, what in (
        ("agent-off", "key file"),
        ("agent-module", "SoftHSM key, module loaded in the bridge"),
        ("agent-socket", f"SoftHSM key via p11-server, which holds {service_mb:.1f} MB itself"),
    ):
        mb = mem[key]["rss_kib"] * 1024 / 1e6
        out.append(
            Row(
                f"Resident memory (VmRSS) of the bridge process after the throughput runs ({what})",
                f"{mb:.1f} MB",
                f"mosquitto bridge: {anchor_mb:.1f} MB",
                mb / anchor_mb,
                "≤ 40 MB",
                mb <= 40,
            )
        )

    cli = results["cli"]
    a, p = cli["agent_median_ms"], cli["python_median_ms"]
    out.append(
        Row(
            f"`agent config get device.cryptoki.mode` wall time, median of {cli['runs']}",
            f"{a:.0f} ms",
            f"`python -c pass`: {p:.0f} ms",
            a / p,
            "≤ 150 ms",
            a <= 150,
        )
    )
    if "three_clouds" in results:
        out += three_clouds_rows(results)
    return out


def markdown(table: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in table]
    return "\n".join(lines)


def row_dicts(table: list[Row]) -> list[dict[str, Any]]:
    return [asdict(row) for row in table]


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return (done.stdout or done.stderr).strip()


def machine() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for package in ("paho-mqtt", "tlslite-ng", "cryptography", "python-pkcs11", "edgeagent"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    # Uncommitted changes to the measured code (other people work in the tree).
    changed = _run(["git", "-C", str(REPO), "status", "--porcelain", "--", "edgeagent"])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": _run(["mosquitto", "-h"]).splitlines()[0] if _run(["mosquitto", "-h"]) else "",
        "packages": versions,
        "git_commit": _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "edgeagent_uncommitted": [
            line.split(maxsplit=1)[-1] for line in changed.splitlines() if line.strip()
        ],
    }

"""Three clouds connected at once: what the gateway pays in memory for the bridges.

    figures = run(bed, "module")   # {"pss_kib": sum, "per_cloud": {...}}

One local broker, one stand-in cloud broker per cloud (each sees the device
under its own client id), and c8y, az and aws started from one config dir
as `agent connect` starts them (``BridgeService.start``: the first becomes
the bridge host, the others join it as threads). Once every bridge reports
its cloud up, the sum of the proportional set sizes of the processes that
hold the clouds' pid files (``Pss`` in /proc/<pid>/smaps_rollup: pages shared
between processes are split among them, so the sum is what the bridges cost
together; with the host it is one process).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.bridge.service import BridgeService
from edgeagent.config import load_config, set_value
from integration.bench.bridges import rss_kib
from integration.bench.testbed import BenchError, Testbed, wait_until

CLOUDS = ("c8y", "az", "aws")


def pss_kib(pid: int) -> int:
    """Pss of ``pid`` in KiB, from /proc/<pid>/smaps_rollup."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise BenchError(f"no Pss for pid {pid}")


def run(bed: Testbed, mode: str = "module", timeout: float = 60.0) -> dict[str, Any]:
    local = bed.local_broker("clouds-local")
    config_dir = bed.agent_config("etc-clouds", local, bed.cloud_broker("clouds-c8y"), mode)
    for cloud in CLOUDS[1:]:
        broker = bed.cloud_broker(f"clouds-{cloud}")
        set_value(config_dir, f"{cloud}.url", broker.url)
        set_value(config_dir, f"{cloud}.root_cert_path", str(bed.pki.ca.cert_path))
    up: set[str] = set()
    changed = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            if json.loads(message.payload).get("status") == "up":
                up.add(message.topic.split("/")[2])
                changed.set()
        except ValueError:
            return

    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    watcher.on_message = on_message
    watcher.on_connect = lambda c, *_: c.subscribe("agent/bridge/+/health", 1)
    watcher.connect(local.host, local.port)
    watcher.loop_start()
    config = load_config(config_dir)
    services = {
        cloud: BridgeService(cloud, config_dir, config.run.path, config.logs.path)
        for cloud in CLOUDS
    }
    try:
        for service in services.values():
            service.start()

        def all_up() -> bool:
            for cloud, service in services.items():
                if service.running_pid() is None:
                    raise BenchError(f"bridge {cloud} stopped:\n{service.log_tail()}")
            return up >= set(CLOUDS)

        wait_until(all_up, timeout, "three bridges reporting their clouds up")
        pids = {cloud: service.running_pid() for cloud, service in services.items()}
        per_process = {
            pid: {"pss_kib": pss_kib(pid), "rss_kib": rss_kib(pid)}
            for pid in sorted({p for p in pids.values() if p is not None})
        }
        return {
            "mode": mode,
            "processes": len(per_process),
            "pss_kib": sum(p["pss_kib"] for p in per_process.values()),
            "rss_kib": sum(p["rss_kib"] for p in per_process.values()),
            "per_cloud": {cloud: {"pid": pid} for cloud, pid in pids.items()},
            "per_process": {str(pid): figures for pid, figures in per_process.items()},
        }
    finally:
        watcher.loop_stop()
        watcher.disconnect()
        for service in services.values():
            service.stop()

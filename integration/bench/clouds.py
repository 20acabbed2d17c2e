"""Three clouds connected at once: what the gateway pays in memory for the bridges.

    figures = run(bed, "module")   # {"pss_kib": sum, "per_cloud": {...}}

One local broker, one stand-in cloud broker per cloud (each sees the device
under its own client id), and `agent --config-dir D bridge run <cloud>` for
c8y, az and aws from one config dir, as `agent connect` starts them. Once
every bridge reports its cloud up, the sum of their proportional set sizes
(``Pss`` in /proc/<pid>/smaps_rollup: pages shared between the processes are
split among them, so the sum is what the three cost together).
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.config import set_value
from integration.bench.bridges import rss_kib
from integration.bench.testbed import AGENT, BenchError, Testbed, stop_process, wait_until

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
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for cloud in CLOUDS:
            with (bed.root / f"clouds-{cloud}.log").open("wb") as log:
                processes[cloud] = subprocess.Popen(
                    [str(AGENT), "--config-dir", str(config_dir), "bridge", "run", cloud],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

        def all_up() -> bool:
            for cloud, process in processes.items():
                if process.poll() is not None:
                    log = (bed.root / f"clouds-{cloud}.log").read_text(errors="replace")
                    raise BenchError(f"bridge {cloud} exited {process.returncode}:\n{log}")
            return up >= set(CLOUDS)

        wait_until(all_up, timeout, "three bridges reporting their clouds up")
        per_cloud = {
            cloud: {"pid": p.pid, "pss_kib": pss_kib(p.pid), "rss_kib": rss_kib(p.pid)}
            for cloud, p in processes.items()
        }
        return {
            "mode": mode,
            "processes": len(processes),
            "pss_kib": sum(c["pss_kib"] for c in per_cloud.values()),
            "rss_kib": sum(c["rss_kib"] for c in per_cloud.values()),
            "per_cloud": per_cloud,
        }
    finally:
        watcher.loop_stop()
        watcher.disconnect()
        for process in processes.values():
            stop_process(process, timeout=10.0)

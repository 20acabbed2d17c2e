"""The two bridges under test, each with its own local broker and cloud.

- `AgentBridge`: `agent --config-dir D bridge run c8y` as a user runs it,
  between a plain local mosquitto and a TLS 1.3 stand-in cloud.
- `MosquittoBridge`: a local mosquitto whose own bridge (a `connection`
  section, TLS 1.3, key file) forwards to a stand-in cloud.

Both forward local ``c8y/s/us`` to the cloud's ``s/us``. `bridge_pid` is the
process that does the forwarding (for its resident memory).
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from integration.bench.testbed import AGENT, BenchError, Testbed, stop_process, wait_until
from tests.support.mosquitto import Mosquitto

LOCAL_TOPIC = "c8y/s/us"
CLOUD_TOPIC = "s/us"
HEALTH_TOPIC = "agent/bridge/c8y/health"


class BridgeUnderTest(Protocol):
    name: str
    local: Mosquitto
    cloud: Mosquitto

    @property
    def bridge_pid(self) -> int: ...

    def stop(self) -> None: ...


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


class AgentBridge:
    """`agent bridge run c8y` in a subprocess; ``mode`` 'off' (key file) or 'module'."""

    def __init__(self, bed: Testbed, mode: str, timeout: float = 60.0) -> None:
        self.name = f"agent-{mode}"
        self.bed = bed
        self.cloud = bed.cloud_broker(f"{self.name}-cloud")
        self.local = bed.local_broker(f"{self.name}-local")
        self.config_dir = bed.agent_config(f"etc-{self.name}", self.local, self.cloud, mode)
        self.log_path = bed.root / f"{self.name}.log"
        with self.log_path.open("wb") as log:
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [str(AGENT), "--config-dir", str(self.config_dir), "bridge", "run", "c8y"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_up(timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def bridge_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _wait_up(self, timeout: float) -> None:
        up = threading.Event()

        def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            try:
                if json.loads(message.payload).get("status") == "up":
                    up.set()
            except ValueError:
                return

        watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        watcher.on_message = on_message
        watcher.on_connect = lambda c, *_: c.subscribe(HEALTH_TOPIC, 1)
        watcher.connect(self.local.host, self.local.port)
        watcher.loop_start()
        try:

            def ready() -> bool:
                if self.process is not None and self.process.poll() is not None:
                    raise BenchError(
                        f"agent bridge exited {self.process.returncode}:\n"
                        + self.log_path.read_text(errors="replace")
                    )
                return up.is_set()

            wait_until(ready, timeout, f"{self.name} bridge reporting the cloud up")
        finally:
            watcher.loop_stop()
            watcher.disconnect()
        # The health message goes out once both links are up; the local
        # subscription may still be in flight: wait until the broker has it.
        wait_until(
            lambda: (
                f"agent-bridge-c8y 2 {LOCAL_TOPIC}" in self.local.log_text()
                or f"agent-bridge-c8y 1 {LOCAL_TOPIC}" in self.local.log_text()
            ),
            timeout,
            f"{self.name} subscribed to {LOCAL_TOPIC}",
        )

    def stop(self) -> None:
        stop_process(self.process, timeout=10.0)
        self.process = None
        self.local.stop()
        self.cloud.stop()


class MosquittoBridge:
    """A local mosquitto with a `connection` section: mosquitto's own C bridge."""

    REMOTE_CLIENT_ID = "bench-mosquitto-bridge"

    def __init__(self, bed: Testbed, timeout: float = 30.0) -> None:
        self.name = "mosquitto"
        self.cloud = bed.cloud_broker("mosquitto-cloud")
        device = bed.file_device
        section = [
            "",
            "connection cloud",
            f"address localhost:{self.cloud.tls_port}",
            f"bridge_cafile {bed.pki.ca.cert_path}",
            f"bridge_certfile {device.cert_path}",
            f"bridge_keyfile {device.key_path}",
            "bridge_tls_version tlsv1.3",
            # local "c8y/s/us" -> remote "s/us"
            f'topic {CLOUD_TOPIC} out 1 c8y/ ""',
            "cleansession false",
            "try_private false",
            f"remote_clientid {self.REMOTE_CLIENT_ID}",
            "start_type automatic",
            "notifications false",
        ]
        self.local = bed.local_broker("mosquitto-local", extra_config=section)
        wait_until(
            lambda: f"as {self.REMOTE_CLIENT_ID}" in self.cloud.log_text(),
            timeout,
            "mosquitto's bridge connected to the cloud",
        )

    @property
    def bridge_pid(self) -> int:
        pid = self.local.pid
        assert pid is not None
        return pid

    def stop(self) -> None:
        self.local.stop()
        self.cloud.stop()

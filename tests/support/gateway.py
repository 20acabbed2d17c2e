"""A device's config dir wired to a local broker and a stand-in cloud.

    gw = new_gateway(tmp_path, local_broker, cloud_broker, pki)
    gw.set("device.cryptoki.mode", "module")     # or "socket", see test_socket_mode
    done = gw.agent("connect", "c8y")            # the real `agent` command

Shared by the module-mode and socket-mode end-to-end tests; the cryptoki
settings are each test's own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgeagent import errors
from edgeagent.cli.exit_codes import exit_code_for
from edgeagent.config import set_value
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_probe import MqttProbe, client_tls_context
from tests.support.pki import TestPki
from tests.support.softhsm import SoftHsmKey

AGENT = Path(sys.executable).with_name("agent")


def exit_code(cls: type[errors.AgentError]) -> int:
    """The `agent` command's exit code for an error class (edgeagent/cli/exit_codes.py)."""
    return exit_code_for(cls("x"))


@dataclass
class Gateway:
    """A device's config dir wired to a local broker and a cloud."""

    config_dir: Path
    local: Mosquitto
    cloud: Mosquitto
    pki: TestPki

    def set(self, key: str, value: str) -> None:
        set_value(self.config_dir, key, value)

    def agent(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, AGENT_CONFIG_DIR=str(self.config_dir))
        return subprocess.run(
            [str(AGENT), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    def cloud_app(self) -> MqttProbe:
        """A client of the cloud broker: plays the cloud side of the conversation."""
        app = self.pki.client("cloud-app")
        tls = client_tls_context(self.pki.ca.cert_path, app.cert_path, app.key_path)
        return MqttProbe(self.cloud.hostname, self.cloud.tls_port, tls=tls)

    def local_client(self) -> MqttProbe:
        return MqttProbe(self.local.host, self.local.port)

    def use_module(self, module: Path, pin: str) -> None:
        """Module mode: the agent loads ``module`` and logs in with ``pin``."""
        self.set("device.cryptoki.mode", "module")
        self.set("device.cryptoki.module_path", str(module))
        self.set("device.cryptoki.pin", pin)

    @property
    def run_dir(self) -> Path:
        return self.config_dir.parent / "run"

    def bridge_pid(self, cloud: str = "c8y") -> int:
        return int((self.run_dir / f"bridge-{cloud}.pid").read_text())


def new_gateway(tmp_path: Path, local: Mosquitto, cloud: Mosquitto, pki: TestPki) -> Gateway:
    """A gateway for c8y with everything set but the device key."""
    gw = Gateway(tmp_path / "etc-agent", local, cloud, pki)
    gw.set("c8y.url", cloud.url)
    gw.set("c8y.root_cert_path", str(pki.ca.cert_path))
    gw.set("mqtt.client.host", local.host)
    gw.set("mqtt.client.port", str(local.port))
    gw.set("run.path", str(tmp_path / "run"))
    gw.set("logs.path", str(tmp_path / "log"))
    return gw


def process_alive(pid: int) -> bool:
    from edgeagent.bridge.service import process_alive as alive

    return alive(pid)


class Progress:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def detail(self, name: str, value: str) -> None:
        self.lines.append(f"{name}: {value}")

    def step(self, label: str) -> contextlib.nullcontext[None]:
        self.lines.append(label)
        return contextlib.nullcontext()


def issue_device_cert(gw: Gateway, key: SoftHsmKey, cn: str = "device-001") -> Path:
    return gw.pki.ca.issue_client(key.public_key, cn)

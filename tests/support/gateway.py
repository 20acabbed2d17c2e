"""A device's config dir wired to a local broker and a stand-in cloud: one factory for every mode.

    gw = gateway_factory("module", token=softhsm_token)   # or token=software_tpm
    gw.new_device_key(softhsm_token, "ec-p256")           # on the token; cert from pki.ca
    done = gw.agent("connect", "c8y")                     # the real `agent` command
    up, down = gw.exchange(b"200,c8y_Temperature,T,25", b"510,device-001")

The mode is device.cryptoki.mode:

- ``"off"``: the device key is a PEM file, ``pki.client(cn)``'s key and certificate.
- ``"module"``: the agent loads ``token.module`` (SoftHSM2, or tpm2-pkcs11 for the
  software TPM) and logs in with ``token.pin``; the key and its certificate are
  the test's (``use_key``, ``new_device_key``).
- ``"socket"``: the agent signs through the signing service at ``socket_path``
  (tests/support/signing_service.py) and has neither a module path nor a PIN.

Every gateway is set up for c8y with the fixtures' brokers and ``pki``; its
config dir is ``<root>/etc-agent`` next to ``<root>/run`` and ``<root>/log``,
``root`` being the test's ``tmp_path`` (or ``tmp_path / name``).

Fixtures:

- ``gateway_factory``: ``gateway_factory(mode, token=..., socket_path=..., name=...)``;
  every bridge a gateway left running is stopped (``agent disconnect``) after the test.
- ``gateway``: module mode on ``softhsm_token``, the README's case. A test module
  that needs another mode defines its own ``gateway`` with the factory.
"""

from __future__ import annotations

import builtins
import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import pytest

from edgeagent.config import set_value
from integration.standin import BrokerAddress, CumulocityResponder, StandinError
from tests.support.agent_cli import AGENT as AGENT  # also importable from here, its old home
from tests.support.agent_cli import exit_code as exit_code  # (idem)
from tests.support.agent_cli import run_agent
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_probe import MqttProbe, Received, client_tls_context
from tests.support.pki import TestPki
from tests.support.softhsm import SoftHsmToken
from tests.support.tokens import TokenKey
from tests.support.tpm import SoftwareTpm

Mode = Literal["off", "module", "socket"]


Token = SoftHsmToken | SoftwareTpm
"""A token the agent reaches in module mode (``.module``, ``.pin``, ``.generate_key``)."""


@dataclass
class Gateway:
    """A device's config dir wired to a local broker and a cloud."""

    config_dir: Path
    local: Mosquitto
    cloud: Mosquitto
    pki: TestPki
    c8y_responder: CumulocityResponder | None = None

    def set(self, key: str, value: str) -> None:
        set_value(self.config_dir, key, value)

    def agent(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_agent(*args, config_dir=self.config_dir, timeout=timeout)

    @property
    def root(self) -> Path:
        return self.config_dir.parent

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def bridge_pid(self, cloud: str = "c8y") -> int:
        return int((self.run_dir / f"bridge-{cloud}.pid").read_text())

    # -- the device key

    def use_module(self, module: Path, pin: str) -> None:
        """Module mode: the agent loads ``module`` and logs in with ``pin``."""
        self.set("device.cryptoki.mode", "module")
        self.set("device.cryptoki.module_path", str(module))
        self.set("device.cryptoki.pin", pin)

    def use_key(
        self, key: TokenKey, *, uri: str | None = None, cn: str = "device-001", **cert: Any
    ) -> None:
        """``key`` (named by ``uri`` if given) is the device key, with a certificate for it."""
        self.set("device.key_uri", uri or key.uri)
        self.set("device.cert_path", str(issue_device_cert(self, key, cn, **cert)))

    def new_device_key(
        self, token: Token, spec: str = "ec-p256", *, label: str = "device-key", **cert: Any
    ) -> TokenKey:
        """Generate a key on ``token`` and make it the device key (``use_key``)."""
        key = token.generate_key(spec, label=label)  # type: ignore[arg-type]
        self.use_key(key, **cert)
        return key

    # -- the two brokers' sides

    def cloud_address(self, cn: str = "cloud-app") -> BrokerAddress:
        """The cloud broker for a stand-in service of the cloud (a responder) as ``cn``."""
        app = self.pki.client(cn)
        return BrokerAddress(
            self.cloud.hostname,
            self.cloud.tls_port,
            self.pki.ca.cert_path,
            app.cert_path,
            app.key_path,
        )

    def cloud_app(self) -> MqttProbe:
        """A client of the cloud broker: plays the cloud side of the conversation."""
        app = self.pki.client("cloud-app")
        tls = client_tls_context(self.pki.ca.cert_path, app.cert_path, app.key_path)
        return MqttProbe(self.cloud.hostname, self.cloud.tls_port, tls=tls)

    def local_client(self) -> MqttProbe:
        return MqttProbe(self.local.host, self.local.port)

    def exchange(self, up: bytes, down: bytes, *, timeout: float = 15) -> tuple[Received, Received]:
        """One QoS 1 message each way through the running bridge; what arrived, one each.

        ``up`` is published on the local c8y/s/us and must reach the cloud's
        s/us; then ``down`` on the cloud's s/ds must reach the local c8y/s/ds.
        """
        with self.cloud_app() as cloud, self.local_client() as local:
            cloud.subscribe("s/us", qos=1)
            local.subscribe("c8y/s/ds", qos=1)
            local.publish("c8y/s/us", up, qos=1)
            [arrived_up] = cloud.wait_for(1, "s/us", timeout=timeout)
            cloud.publish("s/ds", down, qos=1)
            [arrived_down] = local.wait_for(1, "c8y/s/ds", timeout=timeout)
        return arrived_up, arrived_down

    def publish_while_the_cloud_is_away(self, count: int, *, timeout: float) -> builtins.set[int]:
        """Publish 0..count-1 (QoS 1) on c8y/s/us with the cloud down, bring it back;
        the numbers the cloud then received on s/us within ``timeout`` s."""
        with self.local_client() as local:
            self.cloud.stop()
            for i in range(count):
                local.publish("c8y/s/us", b"%05d" % i, qos=1, timeout=30)
            self.cloud.start()
            with self.cloud_app() as cloud:
                cloud.subscribe("s/us", qos=1)
                cloud.wait_for(count, "s/us", timeout=timeout)
                return {int(m.payload) for m in cloud.messages}

    def disconnect_all(self) -> None:
        """Stop every bridge this gateway left running (`agent disconnect <cloud>`)."""
        for pid_file in sorted(self.run_dir.glob("bridge-*.pid")):
            self.agent("disconnect", pid_file.stem.removeprefix("bridge-"))


_responders: dict[int, CumulocityResponder] = {}
"""This test's stand-in Cumulocity responders, by their cloud broker's TLS port."""


@pytest.fixture(autouse=True)
def _stop_c8y_responders() -> Iterator[None]:
    """Stop the responders `new_gateway` started during the test."""
    yield
    while _responders:
        _responders.popitem()[1].stop()


def new_gateway(tmp_path: Path, local: Mosquitto, cloud: Mosquitto, pki: TestPki) -> Gateway:
    """A gateway for c8y with everything set but the device key.

    The stand-in Cumulocity answers `agent connect c8y`'s round trip (empty
    s/uat -> 71,<JWT> on s/dat) like the real one: ``gw.c8y_responder``, one
    per cloud broker, stopped at the end of the test; None for a broker it
    cannot join (then connect's check fails, exit 62, as with a real tenant
    that does not know the device).
    """
    gw = Gateway(tmp_path / "etc-agent", local, cloud, pki)
    responder = _responders.get(cloud.tls_port)
    if responder is None:
        try:
            responder = CumulocityResponder(gw.cloud_address("c8y-standin")).start()
        except StandinError:
            responder = None
        else:
            _responders[cloud.tls_port] = responder
    gw.c8y_responder = responder
    gw.set("c8y.url", cloud.url)
    gw.set("c8y.root_cert_path", str(pki.ca.cert_path))
    gw.set("mqtt.client.host", local.host)
    gw.set("mqtt.client.port", str(local.port))
    gw.set("run.path", str(tmp_path / "run"))
    gw.set("logs.path", str(tmp_path / "log"))
    return gw


def issue_device_cert(gw: Gateway, key: TokenKey, cn: str = "device-001", **cert: Any) -> Path:
    """A client certificate from ``gw.pki.ca`` for the token key's public half."""
    return gw.pki.ca.issue_client(key.public_key, cn, **cert)


class GatewayFactory(Protocol):
    """What ``gateway_factory`` yields; see the module docstring for the modes."""

    def __call__(
        self,
        mode: Mode,
        *,
        token: Token | None = None,
        socket_path: Path | None = None,
        cn: str = "device-001",
        name: str | None = None,
    ) -> Gateway: ...


@pytest.fixture
def gateway_factory(
    tmp_path: Path, local_broker: Mosquitto, cloud_broker: Mosquitto, pki: TestPki
) -> Iterator[GatewayFactory]:
    """Gateways in any mode on this test's brokers; their bridges stopped afterwards."""
    made: list[Gateway] = []

    def make(
        mode: Mode,
        *,
        token: Token | None = None,
        socket_path: Path | None = None,
        cn: str = "device-001",
        name: str | None = None,
    ) -> Gateway:
        root = tmp_path if name is None else tmp_path / name
        gw = new_gateway(root, local_broker, cloud_broker, pki)
        made.append(gw)
        if mode == "off":
            device = pki.client(cn)
            gw.set("device.cryptoki.mode", "off")
            gw.set("device.key_path", str(device.key_path))
            gw.set("device.cert_path", str(device.cert_path))
        elif mode == "module":
            if token is None:
                raise ValueError("module mode needs token= (a SoftHsmToken or the SoftwareTpm)")
            gw.use_module(token.module, token.pin)
        else:
            if socket_path is None:
                raise ValueError("socket mode needs socket_path= (the signing service's)")
            gw.set("device.cryptoki.mode", "socket")
            gw.set("device.cryptoki.socket_path", str(socket_path))
        return gw

    try:
        yield make
    finally:
        for gw in made:
            gw.disconnect_all()


@pytest.fixture
def gateway(gateway_factory: GatewayFactory, softhsm_token: SoftHsmToken) -> Gateway:
    """Module mode on ``softhsm_token``; the device key is the test's to choose."""
    return gateway_factory("module", token=softhsm_token)


def process_alive(pid: int) -> bool:
    from edgeagent.bridge.processes import process_alive as alive

    return alive(pid)


class Progress:
    """A stand-in for the CLI's progress printer: records what connect reports."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def detail(self, name: str, value: str) -> None:
        self.lines.append(f"{name}: {value}")

    def step(self, label: str) -> contextlib.nullcontext[None]:
        self.lines.append(label)
        return contextlib.nullcontext()

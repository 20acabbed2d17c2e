"""Stand-in Azure IoT Hub and AWS IoT Core next to the gateway's stand-in Cumulocity.

    def test_x(gateway: Gateway, az_hub: AzStandin, softhsm_token) -> None:
        az_hub.attach(gateway)                    # az.url, az.root_cert_path
        gateway.agent("connect", "az")
        with az_hub.app() as hub: ...             # the cloud side of the conversation

Fixtures:

- ``az_hub``: mosquitto with TLS 1.2 and nothing newer, client certificates
  from ``pki.ca`` required, the MQTT user name as the client sends it (so its
  log shows the agent's exact user name), and ``AzureTwinResponder``
  answering twin GETs (``az_hub.twin.silent = True``: a hub that does not).
- ``aws_core``: mosquitto with TLS 1.3 (the "8883" endpoint) and the thing
  policy ``AwsPolicy`` (``aws_core.reload_policy(silent=True)``: a policy that
  does not let the thing receive its test topic). ``aws_core.front()`` is the
  port-443 endpoint, an ``AlpnFront`` that insists on ALPN x-amzn-mqtt-ca.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.standin import AlpnFront, AwsPolicy, AzureTwinResponder, BrokerAddress
from tests.support.gateway import Gateway
from tests.support.mosquitto import Mosquitto, MosquittoFactory, TlsListener
from tests.support.mqtt_probe import MqttProbe, client_tls_context
from tests.support.pki import TestPki

APP = "cloud-app"  # the cloud side's certificate CN (the AWS policy lets it do anything)


@dataclass
class CloudStandin:
    """One stand-in cloud broker and what a test does with it."""

    cloud: str  # "az" / "aws"
    broker: Mosquitto
    pki: TestPki

    def attach(self, gw: Gateway, url: str | None = None) -> None:
        """Point ``gw``'s ``<cloud>.url`` and root CA at this stand-in."""
        gw.set(f"{self.cloud}.url", url or self.broker.url)
        gw.set(f"{self.cloud}.root_cert_path", str(self.pki.ca.cert_path))

    def address(self, cn: str = APP) -> BrokerAddress:
        app = self.pki.client(cn)
        return BrokerAddress(
            self.broker.hostname,
            self.broker.tls_port,
            self.pki.ca.cert_path,
            app.cert_path,
            app.key_path,
        )

    def app(self) -> MqttProbe:
        """A client of the cloud broker with the ``cloud-app`` certificate (user name)."""
        app = self.pki.client(APP)
        tls = client_tls_context(self.pki.ca.cert_path, app.cert_path, app.key_path)
        return MqttProbe(self.broker.hostname, self.broker.tls_port, tls=tls, username=APP)


@dataclass
class AzStandin(CloudStandin):
    twin: AzureTwinResponder | None = None


@dataclass
class AwsStandin(CloudStandin):
    policy: AwsPolicy | None = None

    def front(self, **kwargs: Any) -> AlpnFront:
        """AWS's port 443: TLS with ALPN x-amzn-mqtt-ca, relayed to the broker."""
        server = self.pki.localhost_server
        return AlpnFront(
            certfile=server.cert_path,
            keyfile=server.key_path,
            client_cafile=self.pki.ca.cert_path,
            backend=(self.broker.host, self.broker.port),
            **kwargs,
        )

    def reload_policy(self, silent: bool) -> None:
        assert self.policy is not None
        reloads = self.broker.log_text().count("Reloading config")
        self.policy.set_silent(silent, self.broker.pid)
        deadline = time.monotonic() + 10
        while self.broker.log_text().count("Reloading config") <= reloads:
            assert time.monotonic() < deadline, "the AWS stand-in did not reload its policy"
            time.sleep(0.05)


@pytest.fixture
def az_hub(mosquitto_factory: MosquittoFactory, pki: TestPki) -> Iterator[AzStandin]:
    tls = dataclasses.replace(
        TlsListener.tls12_only(pki.localhost_server, client_ca=pki.ca.cert_path),
        use_identity_as_username=False,
    )
    # plain=True only for allow_anonymous: the twin responder sends no user name.
    broker = mosquitto_factory(plain=True, tls=tls, name="azure")
    hub = AzStandin("az", broker, pki)
    hub.twin = AzureTwinResponder(hub.address("az-standin")).start()
    try:
        yield hub
    finally:
        hub.twin.stop()


@pytest.fixture
def aws_core(mosquitto_factory: MosquittoFactory, pki: TestPki, tmp_path: Path) -> AwsStandin:
    policy = AwsPolicy(tmp_path / "aws.acl", apps=[APP])
    tls = TlsListener.for_server(pki.localhost_server, client_ca=pki.ca.cert_path)
    broker = mosquitto_factory(plain=True, tls=tls, name="aws", extra_config=policy.config_lines())
    return AwsStandin("aws", broker, pki, policy=policy)

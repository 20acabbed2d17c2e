"""The bridge's health topic names the real cause of a cloud link that is down.

Socket mode: the bridge signs every handshake through `agent p11-server`.
With the service stopped, the next reconnect cannot sign: the health says
so (the signing service, its class and its fix), not only "connection lost".
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.gateway import Gateway, GatewayFactory, issue_device_cert
from tests.support.signing_service import P11Server, P11ServerFactory
from tests.support.softhsm import SoftHsmKey, SoftHsmToken

pytestmark = pytest.mark.integration

HEALTH = "agent/bridge/c8y/health"


@pytest.fixture
def device_key(softhsm_token: SoftHsmToken) -> SoftHsmKey:
    return softhsm_token.generate_key("ec-p256", label="device-key")


@pytest.fixture
def service(
    p11_server_factory: P11ServerFactory, softhsm_token: SoftHsmToken, device_key: SoftHsmKey
) -> P11Server:
    return p11_server_factory(softhsm_token, device_key).start()


@pytest.fixture
def gateway(service: P11Server, gateway_factory: GatewayFactory, device_key: SoftHsmKey) -> Gateway:
    gw = gateway_factory("socket", socket_path=service.socket_path)
    gw.set("device.cert_path", str(issue_device_cert(gw, device_key)))
    return gw


def _health_until(gw: Gateway, wanted: Any, timeout: float) -> dict[str, Any]:
    """The first health message for which ``wanted(health)`` holds."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    with gw.local_client() as local:
        local.subscribe(HEALTH, qos=1)
        while time.monotonic() < deadline:
            seen = [json.loads(m.payload) for m in local.messages if m.topic == HEALTH]
            for health in seen:
                if wanted(health):
                    return health
            time.sleep(0.2)
    raise AssertionError(f"no such health message within {timeout:.0f} s: {seen}")


def test_a_stopped_signing_service_is_the_reason_the_cloud_is_down(
    gateway: Gateway, service: P11Server
) -> None:
    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    service.stop()
    gateway.cloud.restart()  # the bridge has to handshake, so sign, again

    health = _health_until(gateway, lambda h: h.get("error"), timeout=60)

    assert health["status"] == "down"
    assert health["error"] == "SignerUnreachable", health
    assert f"signing service socket at {service.socket_path}" in health["reason"] or (
        f"the signing service at {service.socket_path}" in health["reason"]
    ), health
    assert "p11-server" in health["fix"], health
    assert "fix:" not in health["reason"]  # the cause alone; the fix has its own field

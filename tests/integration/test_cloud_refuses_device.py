"""The cloud refuses the device certificate: never a false success.

The usual first-registration failure: the device certificate was issued by a
CA the cloud does not trust. In TLS 1.3 the server checks the client's
certificate after the client has already finished its side of the handshake,
so the refusal arrives as an alert (or a reset) on the first read or write
after it. `agent connect` and `agent doctor` must say so and exit non-zero
(they exited 0 when a BrokenPipeError from the TLS socket was taken for a
closed stdout).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from edgeagent import errors
from tests.support.agent_cli import AGENT, exit_code
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.mosquitto import MosquittoFactory, TlsListener
from tests.support.pki import TestPki

pytestmark = pytest.mark.integration


@pytest.fixture(params=["tlsv1.3", "tlsv1.2"])
def stranger_cloud_gateway(
    request: pytest.FixtureRequest,
    gateway_factory: GatewayFactory,
    mosquitto_factory: MosquittoFactory,
    pki: TestPki,
) -> Gateway:
    """A key-file gateway whose cloud trusts only `pki.other_ca` for client certificates."""
    if request.param == "tlsv1.2":
        listener = TlsListener.tls12_only(pki.localhost_server, client_ca=pki.other_ca.cert_path)
    else:
        listener = TlsListener.for_server(pki.localhost_server, client_ca=pki.other_ca.cert_path)
    stranger = mosquitto_factory(plain=False, tls=listener, name="stranger-cloud")
    gw = gateway_factory("off")
    gw.set("c8y.url", stranger.url)
    return gw


def test_connect_says_the_cloud_refused_the_device_certificate(
    stranger_cloud_gateway: Gateway,
) -> None:
    done = stranger_cloud_gateway.agent("connect", "c8y")
    assert done.returncode == exit_code(errors.DeviceCertificateRefused), done.stdout + done.stderr
    assert "✗" in done.stdout
    assert "does not trust the device certificate" in done.stderr
    assert "register" in done.stderr  # the fix: register the certificate or its CA
    assert "pipe" not in (done.stderr + done.stdout).lower()
    # Nothing was started on a refusal.
    assert not (stranger_cloud_gateway.run_dir / "bridge-c8y.pid").exists()


def test_doctor_says_the_cloud_refused_the_device_certificate(
    stranger_cloud_gateway: Gateway,
) -> None:
    done = stranger_cloud_gateway.agent("doctor", "c8y")
    assert done.returncode == exit_code(errors.DeviceCertificateRefused), done.stdout + done.stderr
    assert "✗" in done.stdout
    assert "does not trust the device certificate" in done.stdout + done.stderr
    assert "All checks passed" not in done.stdout


def test_the_bridge_reports_the_refusal_as_such(stranger_cloud_gateway: Gateway) -> None:
    """The bridge's health reason (and log) names the refusal, not an errno."""
    gw = stranger_cloud_gateway
    bridge = subprocess.Popen(
        [AGENT, "--config-dir", str(gw.config_dir), "bridge", "run", "c8y"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with gw.local_client() as local:
            local.subscribe("agent/bridge/c8y/health")
            deadline = time.monotonic() + 30
            reason = ""
            while "trust" not in reason and time.monotonic() < deadline:
                for message in local.messages:
                    health = json.loads(message.payload)
                    reason = health.get("reason", "")
                time.sleep(0.2)
        assert health["status"] == "down"
        assert "does not trust the device certificate" in reason, reason
        assert "pipe" not in reason.lower()
    finally:
        bridge.terminate()
        _, stderr = bridge.communicate(timeout=30)
    assert "does not trust the device certificate" in stderr
    assert "Broken pipe" not in stderr

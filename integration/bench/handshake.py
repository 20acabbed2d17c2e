"""TLS 1.3 handshake + MQTT CONNACK against one stand-in cloud, in one run.

Stacks, each with an ECDSA P-256 client key:

- ``agent_module``: the agent's stack (tlslite-ng + `TlsClientContext`),
  the key on a SoftHSM2 token, the module loaded in-process; timed by
  `edgeagent.bridge.probe.probe` from TCP connect to CONNACK.
- ``agent_socket``: the same, signing through `agent p11-server`.
- ``agent_file``: the same stack with the key in a file (what is left
  when the token is taken out of the picture).
- ``python_ssl``: paho over Python ``ssl`` (OpenSSL), key file: the anchor.
- ``mosquitto_pub``: one `mosquitto_pub -q 1` run, key file; wall time of
  the whole process, so it includes process start and the PUBLISH.

Ratios are what count; absolute times on a shared machine are noise.

`run_tls12` is the TLS 1.2 row: a stand-in cloud capped at TLS 1.2
(OPENSSL_CONF, as in the tests), the agent in module mode against Python
``ssl`` limited to TLS 1.2 with a key file, same broker, rounds interleaved.
"""

from __future__ import annotations

import ssl
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.bridge.probe import probe
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.file_signer import FileSigner
from edgeagent.signing.module_signer import open_module_signer
from edgeagent.signing.socket_signer import open_socket_signer
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors
from integration.bench.testbed import DEVICE_CN, Testbed
from tests.support.mosquitto import Mosquitto, TlsListener
from tests.support.softhsm import SOFTHSM_MODULE

WARMUP = 3


def _agent_round(tls: TlsClientContext, port: int) -> float:
    result = probe(Endpoint("bench", "localhost", port, DEVICE_CN, tls=tls))
    return result.connack_seconds


def _ssl_round(context: ssl.SSLContext, port: int) -> float:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ssl", protocol=mqtt.MQTTv311)
    client.tls_set_context(context)
    answered = threading.Event()
    client.on_connect = lambda *_: answered.set()
    started = time.perf_counter_ns()
    client.connect("localhost", port)
    deadline = time.monotonic() + 30
    while not answered.is_set() and time.monotonic() < deadline:
        client.loop(0.05)
    elapsed = (time.perf_counter_ns() - started) / 1e9
    client.disconnect()
    if not answered.is_set():
        raise TimeoutError("no CONNACK over Python ssl")
    return elapsed


def _mosquitto_pub_round(bed: Testbed, port: int) -> float:
    device = bed.file_device
    command = [
        "mosquitto_pub",
        *("--cafile", str(bed.pki.ca.cert_path)),
        *("--cert", str(device.cert_path), "--key", str(device.key_path)),
        *("-h", "localhost", "-p", str(port), "-t", "t", "-m", "x", "-q", "1"),
    ]
    started = time.perf_counter_ns()
    subprocess.run(command, check=True, timeout=30, capture_output=True)
    return (time.perf_counter_ns() - started) / 1e9


def _measure(rounds: int, stacks: dict[str, Callable[[], float]]) -> dict[str, dict[str, Any]]:
    """Round-robin over ``stacks`` so that a noisy moment hits all of them alike."""
    for one in stacks.values():
        for _ in range(WARMUP):
            one()  # imports, caches, the broker's first-connection work
    samples: dict[str, list[float]] = {name: [] for name in stacks}
    for _ in range(rounds):
        for name, one in stacks.items():
            samples[name].append(one() * 1000)
    return {name: _summary(sorted(values)) for name, values in samples.items()}


def _summary(samples: list[float]) -> dict[str, Any]:
    return {
        "rounds": len(samples),
        "median_ms": statistics.median(samples),
        "p90_ms": samples[max(0, round(len(samples) * 0.9) - 1)],
        "min_ms": samples[0],
        "max_ms": samples[-1],
        "samples_ms": samples,
    }


def run(bed: Testbed, rounds: int) -> dict[str, Any]:
    """Every stack against a broker with ``set_tcp_nodelay true``, then mosquitto's default.

    With mosquitto's default (Nagle on), the broker's last handshake
    messages and the CONNACK wait for the client's delayed ACK: a ~40 ms
    stall common to every stack that hides their own cost. The first figure
    is the stacks'; the second is what a default mosquitto shows.
    """
    return {
        "nodelay_broker": run_against(bed, rounds, "nodelay", ["set_tcp_nodelay true"]),
        "default_broker": run_against(bed, rounds, "default", []),
    }


def run_against(bed: Testbed, rounds: int, name: str, broker_config: list[str]) -> dict[str, Any]:
    """Median handshake + CONNACK of every stack, same broker, rounds interleaved."""
    broker = bed.cloud_broker(f"handshake-cloud-{name}", broker_config)
    try:
        anchors = load_trust_anchors(bed.pki.ca.cert_path)
        port = broker.tls_port
        token_pem = bed.token_cert.read_text()
        file_pem = bed.file_device.cert_path.read_text()
        module_signer = open_module_signer(SOFTHSM_MODULE, bed.token_key.uri, bed.token.pin)
        service = bed.p11_server()
        socket_signer = open_socket_signer(service.socket_path, bed.token_key.uri)
        file_signer = FileSigner(bed.file_device.key_path)
        # One context per stack, kept across handshakes as the bridge keeps its own.
        module_tls = TlsClientContext(module_signer, token_pem, anchors)
        socket_tls = TlsClientContext(socket_signer, token_pem, anchors)
        file_tls = TlsClientContext(file_signer, file_pem, anchors)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(str(bed.pki.ca.cert_path))
        context.load_cert_chain(str(bed.file_device.cert_path), str(bed.file_device.key_path))
        try:
            results = _measure(
                rounds,
                {
                    "python_ssl": lambda: _ssl_round(context, port),
                    "agent_module": lambda: _agent_round(module_tls, port),
                    "agent_socket": lambda: _agent_round(socket_tls, port),
                    "agent_file": lambda: _agent_round(file_tls, port),
                    "mosquitto_pub": lambda: _mosquitto_pub_round(bed, port),
                },
            )
        finally:
            module_signer.close()
            socket_signer.close()
    finally:
        bed.stop_broker(broker)
    anchor = results["python_ssl"]["median_ms"]
    for figures in results.values():
        figures["ratio_to_python_ssl"] = figures["median_ms"] / anchor
    return results


def run_tls12(bed: Testbed, rounds: int) -> dict[str, Any]:
    """TLS 1.2 handshake + CONNACK: module mode vs Python ssl (TLS 1.2, key file)."""
    tls = TlsListener.tls12_only(bed.pki.localhost_server, client_ca=bed.pki.ca.cert_path)
    broker = bed.started(
        Mosquitto(
            bed.root / "handshake-cloud-tls12",
            plain=False,
            tls=tls,
            extra_config=["set_tcp_nodelay true"],
        )
    )
    try:
        port = broker.tls_port
        anchors = load_trust_anchors(bed.pki.ca.cert_path)
        module_signer = open_module_signer(SOFTHSM_MODULE, bed.token_key.uri, bed.token.pin)
        module_tls = TlsClientContext(module_signer, bed.token_cert.read_text(), anchors)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(str(bed.pki.ca.cert_path))
        context.load_cert_chain(str(bed.file_device.cert_path), str(bed.file_device.key_path))
        try:
            results = _measure(
                rounds,
                {
                    "python_ssl": lambda: _ssl_round(context, port),
                    "agent_module": lambda: _agent_round(module_tls, port),
                },
            )
        finally:
            module_signer.close()
        if module_tls.last_handshake.version != "TLS 1.2":
            raise RuntimeError(f"the TLS 1.2 row negotiated {module_tls.last_handshake.version}")
    finally:
        bed.stop_broker(broker)
    results["agent_module"]["negotiated"] = module_tls.last_handshake.describe()
    anchor = results["python_ssl"]["median_ms"]
    for figures in results.values():
        figures["ratio_to_python_ssl"] = figures["median_ms"] / anchor
    return results

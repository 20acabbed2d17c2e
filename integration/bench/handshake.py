"""TLS 1.3 handshake + MQTT CONNACK: the agent's stack with the key on a token,
next to Python's ``ssl`` (OpenSSL) with a key file, against the same broker in
the same run. Ratios are what count; absolute times on a shared machine are
noise.

    python -m integration.bench.handshake --rounds 50
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeagent.bridge.link import Endpoint
from edgeagent.bridge.probe import probe
from edgeagent.signing.file_signer import FileSigner
from edgeagent.signing.module_signer import open_module_signer
from edgeagent.signing.signer import Signer
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors
from tests.support.mosquitto import Mosquitto, TlsListener
from tests.support.pki import TestPki
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsm


def _softhsm(root: Path) -> SoftHsm:
    token_dir = root / "tokens"
    token_dir.mkdir(parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {token_dir}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return SoftHsm(root, conf, token_dir)


def _agent_round(signer: Signer, cert_pem: str, anchors: Any, port: int) -> float:
    tls = TlsClientContext(signer, cert_pem, anchors)
    result = probe(Endpoint("bench", "localhost", port, "bench-agent", tls=tls))
    return result.connack_seconds


def _ssl_round(context: ssl.SSLContext, port: int) -> float:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ssl", protocol=mqtt.MQTTv311)
    client.tls_set_context(context)
    answered = threading.Event()
    client.on_connect = lambda *_: answered.set()
    started = time.perf_counter()
    client.connect("localhost", port)
    while not answered.is_set():
        client.loop(0.05)
    elapsed = time.perf_counter() - started
    client.disconnect()
    return elapsed


def _measure(rounds: int, one: Callable[[], float]) -> dict[str, float]:
    for _ in range(3):
        one()  # warm-up: imports, caches, the broker's first-connection work
    samples = sorted(one() for _ in range(rounds))
    return {
        "median_ms": statistics.median(samples) * 1000,
        "p90_ms": samples[int(len(samples) * 0.9) - 1] * 1000,
        "min_ms": samples[0] * 1000,
    }


def run(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgeagent-bench-") as name:
        root = Path(name)
        pki = TestPki(root / "pki")
        hsm = _softhsm(root / "softhsm")
        token = hsm.create_token("bench-token")
        key = token.generate_key("ec-p256", label="bench-key")
        token_cert = pki.ca.issue_client(key.public_key, "bench-agent")
        file_client = pki.client("bench-ssl", "ec-p256")
        broker = Mosquitto(
            root / "broker",
            plain=False,
            tls=TlsListener.for_server(pki.localhost_server, client_ca=pki.ca.cert_path),
        ).start()
        try:
            anchors = load_trust_anchors(pki.ca.cert_path)
            module_signer = open_module_signer(SOFTHSM_MODULE, key.uri, token.pin)
            file_signer = FileSigner(file_client.key_path)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            context.load_verify_locations(str(pki.ca.cert_path))
            context.load_cert_chain(str(file_client.cert_path), str(file_client.key_path))
            port = broker.tls_port
            token_pem = token_cert.read_text()
            file_pem = file_client.cert_path.read_text()
            results = {
                "agent_token_p256": _measure(
                    rounds, lambda: _agent_round(module_signer, token_pem, anchors, port)
                ),
                "agent_file_p256": _measure(
                    rounds, lambda: _agent_round(file_signer, file_pem, anchors, port)
                ),
                "python_ssl_file_p256": _measure(rounds, lambda: _ssl_round(context, port)),
            }
            module_signer.close()
        finally:
            broker.stop()
    anchor = results["python_ssl_file_p256"]["median_ms"]
    for figures in results.values():
        figures["ratio_to_python_ssl"] = figures["median_ms"] / anchor
    return {"rounds": rounds, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    report = run(args.rounds)
    print("| stack | median ms | p90 ms | x Python ssl |")
    print("|---|---|---|---|")
    for name, figures in report["results"].items():
        print(
            f"| {name} | {figures['median_ms']:.1f} | {figures['p90_ms']:.1f} | "
            f"{figures['ratio_to_python_ssl']:.2f} |"
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""The stand-in Cumulocity and Azure answer `connect`'s round trip like the real clouds.

Each responder runs next to a real stand-in broker (mosquitto, TLS 1.3,
client certificates required); a device-side client asks as the bridge
would, with the cloud's own topic names.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from integration.standin import AzureTwinResponder, BrokerAddress, CumulocityResponder
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_probe import MqttProbe, client_tls_context
from tests.support.pki import TestPki

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def responder_address(cloud: Mosquitto, pki: TestPki, name: str) -> BrokerAddress:
    creds = pki.client(name)
    return BrokerAddress(
        cloud.hostname, cloud.tls_port, pki.ca.cert_path, creds.cert_path, creds.key_path
    )


def device(cloud: Mosquitto, pki: TestPki, name: str = "device-1") -> MqttProbe:
    creds = pki.client(name)
    tls = client_tls_context(pki.ca.cert_path, creds.cert_path, creds.key_path)
    return MqttProbe(cloud.hostname, cloud.tls_port, client_id=name, tls=tls)


def _b64url_json(part: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


# -- Cumulocity ------------------------------------------------------------------------------


def test_c8y_answers_an_empty_s_uat_with_a_token_on_s_dat(
    cloud_broker: Mosquitto, pki: TestPki
) -> None:
    address = responder_address(cloud_broker, pki, "c8y-standin")
    with CumulocityResponder(address, tenant="t123") as c8y, device(cloud_broker, pki) as dev:
        dev.subscribe("s/dat", qos=1)
        dev.publish("s/uat", b"", qos=1)
        [answer] = dev.wait_for(1, "s/dat", timeout=10)
        [exchange] = c8y.wait_for(1)
    code, token = answer.payload.decode().split(",", 1)
    assert code == "71"
    head, body, signature = token.split(".")
    assert _b64url_json(head) == {"alg": "HS256", "typ": "JWT"}
    claims = _b64url_json(body)
    assert claims["ten"] == "t123"
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] > claims["iat"] >= int(time.time()) - 60
    assert len(base64.urlsafe_b64decode(signature + "=")) == 32  # HMAC-SHA256
    assert exchange.topic == "s/uat" and exchange.answers == (("s/dat", answer.payload),)


def test_c8y_answers_only_an_empty_request(cloud_broker: Mosquitto, pki: TestPki) -> None:
    address = responder_address(cloud_broker, pki, "c8y-standin")
    with CumulocityResponder(address) as c8y, device(cloud_broker, pki) as dev:
        dev.publish("s/uat", b"not empty", qos=1)
        [exchange] = c8y.wait_for(1)
    assert exchange.payload == b"not empty"
    assert exchange.answers == ()


def test_a_silent_c8y_hears_the_request_and_does_not_answer_until_it_speaks_again(
    cloud_broker: Mosquitto, pki: TestPki
) -> None:
    address = responder_address(cloud_broker, pki, "c8y-standin")
    with CumulocityResponder(address, silent=True) as c8y, device(cloud_broker, pki) as dev:
        dev.subscribe("s/dat", qos=1)
        dev.publish("s/uat", b"", qos=1)
        [unanswered] = c8y.wait_for(1)
        c8y.silent = False
        dev.publish("s/uat", b"", qos=1)
        [answer] = dev.wait_for(1, "s/dat", timeout=10)
        exchanges = c8y.wait_for(2)
    assert unanswered.answers == ()
    assert exchanges[1].answers == (("s/dat", answer.payload),)
    assert dev.messages == [answer]  # nothing for the silent request


def test_c8y_from_the_command_line_with_mosquitto_clients(
    cloud_broker: Mosquitto, pki: TestPki, tmp_path: Path
) -> None:
    responder = pki.client("c8y-standin")
    dev = pki.client("device-cli")
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "integration.standin", "c8y"),
            *("--host", cloud_broker.hostname, "--port", str(cloud_broker.tls_port)),
            *("--cafile", str(pki.ca.cert_path)),
            *("--cert", str(responder.cert_path), "--key", str(responder.key_path)),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        tls = [
            *("-h", cloud_broker.hostname, "-p", str(cloud_broker.tls_port)),
            *("--cafile", str(pki.ca.cert_path)),
            *("--cert", str(dev.cert_path), "--key", str(dev.key_path)),
        ]
        sub = subprocess.Popen(
            ["mosquitto_sub", *tls, "-i", "device-cli", "-t", "s/dat", "-C", "1", "-W", "15"],
            stdout=subprocess.PIPE,
            text=True,
        )
        # Publish until the subscriber's subscription is in place.
        deadline = time.monotonic() + 15
        while sub.poll() is None and time.monotonic() < deadline:
            subprocess.run(
                ["mosquitto_pub", *tls, "-i", "device-cli-pub", "-t", "s/uat", "-n", "-q", "1"],
                check=True,
            )
            time.sleep(0.3)
        out, _ = sub.communicate(timeout=15)
        assert out.startswith("71,")
        assert out.count(".") == 2
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err


def test_the_command_line_says_why_it_cannot_start(pki: TestPki, tmp_path: Path) -> None:
    responder = pki.client("c8y-standin")
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "integration.standin", "az", "--host", "127.0.0.1", "--port", "1"),
            *("--cafile", str(pki.ca.cert_path)),
            *("--cert", str(responder.cert_path), "--key", str(responder.key_path)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1
    assert "error: cannot connect to 127.0.0.1:1" in done.stderr


# -- Azure IoT Hub ---------------------------------------------------------------------------


def test_az_answers_a_twin_get_with_the_twin_document(
    cloud_broker: Mosquitto, pki: TestPki
) -> None:
    address = responder_address(cloud_broker, pki, "az-standin")
    with (
        AzureTwinResponder(address, desired={"interval": 30}) as hub,
        device(cloud_broker, pki) as dev,
    ):
        dev.subscribe("$iothub/twin/res/#", qos=1)
        dev.publish("$iothub/twin/GET/?$rid=7", b"", qos=1)
        [answer] = dev.wait_for(1, "$iothub/twin/res/#", timeout=10)
        [exchange] = hub.wait_for(1)
    assert answer.topic == "$iothub/twin/res/200/?$rid=7"
    assert json.loads(answer.payload) == {
        "desired": {"interval": 30, "$version": 1},
        "reported": {"$version": 1},
    }
    assert exchange.topic == "$iothub/twin/GET/?$rid=7"


def test_az_applies_a_reported_patch_and_answers_204_with_the_version(
    cloud_broker: Mosquitto, pki: TestPki
) -> None:
    address = responder_address(cloud_broker, pki, "az-standin")
    with AzureTwinResponder(address), device(cloud_broker, pki) as dev:
        dev.subscribe("$iothub/twin/res/#", qos=1)
        patch = b'{"firmware": {"version": "1.2"}, "gone": null}'
        dev.publish("$iothub/twin/PATCH/properties/reported/?$rid=8", patch, qos=1)
        dev.publish("$iothub/twin/PATCH/properties/reported/?$rid=9", b"[1, 2]", qos=1)
        dev.publish("$iothub/twin/GET/?$rid=10", b"", qos=1)
        answers = dev.wait_for(3, "$iothub/twin/res/#", timeout=10)
    by_rid = {a.topic.split("$rid=")[1].split("&")[0]: a for a in answers}
    assert by_rid["8"].topic == "$iothub/twin/res/204/?$rid=8&$version=2"
    assert by_rid["9"].topic == "$iothub/twin/res/400/?$rid=9"
    assert json.loads(by_rid["10"].payload)["reported"] == {
        "firmware": {"version": "1.2"},
        "$version": 2,
    }


def test_a_silent_az_hears_twin_gets_without_answering(
    cloud_broker: Mosquitto, pki: TestPki
) -> None:
    address = responder_address(cloud_broker, pki, "az-standin")
    with AzureTwinResponder(address, silent=True) as hub, device(cloud_broker, pki) as dev:
        dev.subscribe("$iothub/twin/res/#", qos=1)
        dev.publish("$iothub/twin/GET/?$rid=1", b"", qos=1)
        [exchange] = hub.wait_for(1)
        hub.silent = False
        dev.publish("$iothub/twin/GET/?$rid=2", b"", qos=1)
        [answer] = dev.wait_for(1, "$iothub/twin/res/#", timeout=10)
    assert exchange.answers == ()
    assert answer.topic == "$iothub/twin/res/200/?$rid=2"  # and none for rid 1
    assert len(dev.messages) == 1


def test_a_twin_get_without_a_request_id_gets_no_answer(
    cloud_broker: Mosquitto, pki: TestPki
) -> None:
    address = responder_address(cloud_broker, pki, "az-standin")
    with AzureTwinResponder(address) as hub, device(cloud_broker, pki) as dev:
        dev.publish("$iothub/twin/GET/", b"", qos=1)
        [exchange] = hub.wait_for(1)
    assert exchange.answers == ()

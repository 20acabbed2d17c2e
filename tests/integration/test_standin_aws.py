"""The stand-in AWS IoT Core: its policy, its echo, and its port 443 that insists on ALPN.

The broker is a real mosquitto (TLS 1.3 listener with client certificates,
plus a loopback plain listener behind the front); the front is a Python
`ssl` server. Clients are paho and plain Python `ssl` sockets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.standin import AWS_MQTT_ALPN, AlpnFront, AwsPolicy
from tests.support.mosquitto import Mosquitto, MosquittoFactory, TlsListener
from tests.support.mqtt_probe import MqttProbe, ProbeConnectError, client_tls_context
from tests.support.pki import ClientCredentials, TestPki

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
THING = "thing-1"
TEST_TOPIC = f"thinedge/devices/{THING}/test-connection"


@dataclass
class AwsStandin:
    broker: Mosquitto
    policy: AwsPolicy
    pki: TestPki
    thing: ClientCredentials

    def device_tls(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = client_tls_context(self.pki.ca.cert_path, self.thing.cert_path, self.thing.key_path)
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def device(self, port: int | None = None, alpn: list[str] | None = None) -> MqttProbe:
        """The thing on the broker's TLS port (8883's stand-in), or on ``port`` (the front)."""
        return MqttProbe(
            self.broker.hostname,
            port or self.broker.tls_port,
            client_id=THING,
            tls=self.device_tls(alpn),
        )

    def front(self, backend: tuple[str, int] | None = None, **kwargs: Any) -> AlpnFront:
        """The port-443 front, relaying to the broker's plain listener unless told otherwise."""
        server = self.pki.localhost_server
        return AlpnFront(
            certfile=server.cert_path,
            keyfile=server.key_path,
            client_cafile=self.pki.ca.cert_path,
            backend=backend or (self.broker.host, self.broker.port),
            **kwargs,
        )

    def reload_policy(self, silent: bool) -> None:
        reloads = self.broker.log_text().count("Reloading config")
        self.policy.set_silent(silent, self.broker.pid)
        _wait(lambda: self.broker.log_text().count("Reloading config") > reloads, "ACL reload")


def _wait(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def aws(mosquitto_factory: MosquittoFactory, pki: TestPki, tmp_path: Path) -> AwsStandin:
    policy = AwsPolicy(tmp_path / "aws.acl", apps=["cloud-app"])
    tls = TlsListener.for_server(pki.localhost_server, client_ca=pki.ca.cert_path)
    broker = mosquitto_factory(plain=True, tls=tls, name="aws", extra_config=policy.config_lines())
    return AwsStandin(broker, policy, pki, pki.client(THING))


def _round_trip(device: MqttProbe, payload: bytes) -> bool:
    """Publish on the test topic and, after it, on the thing's own td topic.

    The broker delivers one publisher's messages in order: once the second
    arrives, the first either came before it or is not coming at all.
    """
    device.publish(TEST_TOPIC, payload, qos=1)
    device.publish(f"thinedge/{THING}/td/marker", payload, qos=1)
    device.wait_for(1, f"thinedge/{THING}/td/marker", timeout=10)
    got = [m.payload for m in device.messages if m.topic == TEST_TOPIC]
    device.clear()
    return got == [payload]


# -- the echo and the policy -----------------------------------------------------------------


def test_the_broker_itself_echoes_the_test_message_no_responder_needed(aws: AwsStandin) -> None:
    with aws.device() as device:
        device.subscribe(TEST_TOPIC, qos=1)
        device.subscribe(f"thinedge/{THING}/td/#", qos=1)
        assert _round_trip(device, b"hello")


def test_a_policy_without_receive_leaves_the_test_message_unanswered(aws: AwsStandin) -> None:
    with aws.device() as device:
        device.subscribe(TEST_TOPIC, qos=1)  # accepted, as AWS accepts it
        device.subscribe(f"thinedge/{THING}/td/#", qos=1)
        aws.reload_policy(silent=True)
        assert not _round_trip(device, b"unanswered")
        aws.reload_policy(silent=False)
        assert _round_trip(device, b"answered")


def test_the_policy_confines_a_thing_to_its_own_topics(aws: AwsStandin) -> None:
    other = aws.pki.client("thing-2")
    tls = client_tls_context(aws.pki.ca.cert_path, other.cert_path, other.key_path)
    app = aws.pki.client("cloud-app")
    app_tls = client_tls_context(aws.pki.ca.cert_path, app.cert_path, app.key_path)
    with (
        aws.device() as device,
        MqttProbe(aws.broker.hostname, aws.broker.tls_port, client_id="thing-2", tls=tls) as two,
        MqttProbe(aws.broker.hostname, aws.broker.tls_port, tls=app_tls) as cloud,
    ):
        cloud.subscribe("#", qos=1)
        cloud.subscribe("$aws/#", qos=1)
        device.subscribe(f"thinedge/{THING}/cmd/#", qos=1)
        two.publish(f"thinedge/{THING}/cmd/steal", b"x", qos=1)  # not thing-2's topic
        device.publish(f"$aws/things/{THING}/shadow/update", b"mine", qos=1)
        cloud.publish(f"thinedge/{THING}/cmd/restart", b"from the cloud", qos=1)
        [cmd] = device.wait_for(1, f"thinedge/{THING}/cmd/#", timeout=10)
        cloud.wait_for(1, f"$aws/things/{THING}/shadow/update", timeout=10)
        cloud.wait_for(1, f"thinedge/{THING}/cmd/restart", timeout=10)
    # thing-2 published first (and was acked): had it been let through, it
    # would have arrived first, at the thing and at the cloud.
    assert cmd.payload == b"from the cloud"
    assert f"thinedge/{THING}/cmd/steal" not in [m.topic for m in cloud.messages]


# -- port 443: the ALPN front ----------------------------------------------------------------


def _tls_client(
    aws: AwsStandin,
    port: int,
    alpn: list[str] | None,
    *,
    certificate: bool = True,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> ssl.SSLSocket:
    if certificate:
        ctx = aws.device_tls(alpn)
    else:
        ctx = client_tls_context(aws.pki.ca.cert_path)
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
    ctx.maximum_version = maximum
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def _closed_by_server(tls: ssl.SSLSocket) -> bool:
    """Whether the server ends the connection without a byte (we send an MQTT PINGREQ)."""
    try:
        tls.sendall(b"\xc0\x00")
        return tls.recv(16) == b""
    except (ssl.SSLError, ConnectionError):
        return True


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_the_front_relays_mqtt_for_a_client_that_negotiates_the_aws_alpn(
    aws: AwsStandin, maximum: ssl.TLSVersion
) -> None:
    with aws.front() as front:
        tls = _tls_client(aws, front.port, [AWS_MQTT_ALPN], maximum=maximum)
        with tls:
            assert tls.selected_alpn_protocol() == AWS_MQTT_ALPN
            assert tls.version() == {ssl.TLSVersion.TLSv1_3: "TLSv1.3"}.get(maximum, "TLSv1.2")
            tls.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")  # CONNECT, empty id
            assert tls.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted: the broker answered
        [seen] = front.wait_for_connections(1)
    assert (seen.alpn, seen.client_cn, seen.server_name) == (AWS_MQTT_ALPN, THING, "localhost")
    assert seen.relayed and seen.refused is None
    assert seen.bytes_up == 14 and seen.bytes_down == 4


def test_mqtt_through_the_front_reaches_the_broker_as_the_thing(aws: AwsStandin) -> None:
    with aws.front() as front, aws.device(port=front.port, alpn=[AWS_MQTT_ALPN]) as device:
        device.subscribe(TEST_TOPIC, qos=1)
        device.subscribe(f"thinedge/{THING}/td/#", qos=1)
        assert _round_trip(device, b"via 443")
    assert f"as {THING} " in aws.broker.log_text()


@pytest.mark.parametrize("alpn", [None, ["mqtt"], ["h2", "http/1.1"]])
def test_the_front_closes_a_client_without_the_aws_alpn(
    aws: AwsStandin, alpn: list[str] | None
) -> None:
    with aws.front() as front:
        with _tls_client(aws, front.port, alpn) as tls:
            assert tls.selected_alpn_protocol() is None
            assert _closed_by_server(tls)
        [seen] = front.wait_for_connections(1)
    assert seen.refused == f"ALPN {AWS_MQTT_ALPN!r} not negotiated (got None)"
    assert not seen.relayed and seen.bytes_up == 0  # the broker was never dialled


def test_paho_without_the_alpn_is_refused(aws: AwsStandin) -> None:
    with aws.front() as front:
        probe = aws.device(port=front.port, alpn=None)
        with pytest.raises(ProbeConnectError):
            probe.connect(timeout=5)
        probe.close()
        [seen] = front.wait_for_connections(1)
    assert seen.refused and "ALPN" in seen.refused


@pytest.mark.parametrize("who", ["no certificate", "another CA"])
def test_the_front_requires_a_client_certificate_from_the_ca(aws: AwsStandin, who: str) -> None:
    with aws.front() as front:
        if who == "no certificate":
            tls = _tls_client(aws, front.port, [AWS_MQTT_ALPN], certificate=False)
        else:
            stranger = aws.pki.other_ca.issue_client_with_key(THING)
            ctx = client_tls_context(aws.pki.ca.cert_path, stranger.cert_path, stranger.key_path)
            ctx.set_alpn_protocols([AWS_MQTT_ALPN])
            raw = socket.create_connection(("127.0.0.1", front.port), timeout=10)
            try:
                tls = ctx.wrap_socket(raw, server_hostname="localhost")
            except (ssl.SSLError, ConnectionError):
                tls = None  # refused inside the handshake (TLS 1.2 order of messages)
        if tls is not None:
            with tls:
                assert _closed_by_server(tls)
        [seen] = front.wait_for_connections(1)
    assert seen.refused is not None and seen.refused.startswith("TLS handshake failed")
    assert not seen.relayed


def test_a_front_without_alpn_selects_nothing_and_lets_the_client_decide(
    aws: AwsStandin,
) -> None:
    with aws.front(alpn=None) as front:
        with _tls_client(aws, front.port, [AWS_MQTT_ALPN]) as tls:
            assert tls.selected_alpn_protocol() is None  # a correct client refuses this
            tls.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
            assert tls.recv(4) == b"\x20\x02\x00\x00"
        [seen] = front.wait_for_connections(1)
    assert seen.relayed and seen.alpn is None


def test_the_front_can_reach_a_broker_over_tls(aws: AwsStandin) -> None:
    hop = aws.pki.client("aws-front")
    backend_tls = client_tls_context(aws.pki.ca.cert_path, hop.cert_path, hop.key_path)
    backend = (aws.broker.host, aws.broker.tls_port)
    with aws.front(backend, backend_tls=backend_tls, backend_hostname=aws.broker.hostname) as front:
        tls = _tls_client(aws, front.port, [AWS_MQTT_ALPN])
        with tls:
            tls.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
            assert tls.recv(4) == b"\x20\x02\x00\x00"
    assert "u'aws-front'" in aws.broker.log_text()  # the hop's certificate, not the device's


def _own_sockets_on(port: int) -> list[str]:
    """This process's open TCP sockets with ``port`` at either end (from /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if port in (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)):
            inodes.add(f"socket:[{inode}]")
    fds = Path("/proc/self/fd")
    found = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd) in inodes:
                found.append(fd.name)
    return found


def test_stop_leaves_no_thread_socket_or_listener_behind(aws: AwsStandin) -> None:
    threads_before = set(threading.enumerate())
    front = aws.front().start()
    port = front.port
    idle = _tls_client(aws, port, [AWS_MQTT_ALPN])  # relaying, then the front stops
    refused = _tls_client(aws, port, None)
    half_open = socket.create_connection(("127.0.0.1", port))  # never says hello
    front.wait_for_connections(2)
    assert _own_sockets_on(aws.broker.port)  # the relay's hop to the broker
    front.stop()
    assert all(not t.is_alive() for t in front.threads)
    assert set(threading.enumerate()) == threads_before
    assert _closed_by_server(idle)
    for sock in (idle, refused, half_open):
        sock.close()
    assert _own_sockets_on(port) == []
    assert _own_sockets_on(aws.broker.port) == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_the_front_from_the_command_line(aws: AwsStandin) -> None:
    server = aws.pki.localhost_server
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "integration.standin", "aws-front"),
            *("--cert", str(server.cert_path), "--key", str(server.key_path)),
            *("--client-cafile", str(aws.pki.ca.cert_path)),
            *("--backend", f"{aws.broker.host}:{aws.broker.port}"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        word, port = process.stdout.readline().split()
        assert word == "ready"
        with _tls_client(aws, int(port), [AWS_MQTT_ALPN]) as tls:
            tls.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
            assert tls.recv(4) == b"\x20\x02\x00\x00"
        with _tls_client(aws, int(port), None) as tls:
            assert _closed_by_server(tls)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err

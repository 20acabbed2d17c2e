"""The bridge's status file: what it holds, how it is written, what the bridge reports to it."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from edgeagent.bridge.bridge import Bridge
from edgeagent.bridge.rule import BridgeRule
from edgeagent.bridge.rules import TopicRules
from edgeagent.bridge.status_file import (
    BridgeStatus,
    Counters,
    Dropped,
    EachWay,
    LinkStatus,
    StatusFile,
    read_status,
    status_path,
    without_pin,
)
from edgeagent.errors import ServiceError
from edgeagent.mqtt import packets as p
from edgeagent.mqtt.endpoint import Endpoint
from tests.support.fake_socket import FakeSocket
from tests.support.ports import free_port

RULES = TopicRules([BridgeRule("out", "c8y/", "", "s/us"), BridgeRule("in", "c8y/", "", "s/ds")])


def private_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    return run


def test_the_json_reads_back_as_written() -> None:
    status = BridgeStatus(
        "c8y",
        1234,
        1_764_612_248.0,
        "device-001",
        "pkcs11:token=t;object=k",
        updated_at=1_764_612_300.0,
        cloud_link=LinkStatus(True, 1_764_612_250.0, "refused", 1_764_612_249.0, "TLS 1.3"),
        counters=Counters(EachWay(5, 2), EachWay(1, 0), Dropped(oversize=3)),
    )
    raw = json.loads(json.dumps(status.to_json()))
    assert raw["started_at"] == "2025-12-01T18:04:08Z"
    assert raw["cloud_link"]["tls_version"] == "TLS 1.3"
    assert raw["forwarded"] == {"to_cloud": 5, "to_local": 2}
    assert raw["dropped"] == {"oversize": 3, "no_rule": 0, "qos0_link_down": 0}
    assert BridgeStatus.from_json(raw) == status


def test_a_pin_in_the_key_uri_never_reaches_the_file(tmp_path: Path) -> None:
    assert without_pin("pkcs11:token=t;object=k?pin-value=1234") == "pkcs11:token=t;object=k"
    assert (
        without_pin("pkcs11:token=t?pin-value=1234&module-path=/m.so")
        == "pkcs11:token=t?module-path=/m.so"
    )
    writer = StatusFile(
        status_path(private_dir(tmp_path), "c8y"), "c8y", "d", "pkcs11:object=k?pin-value=987654"
    )
    writer.write()
    assert "987654" not in writer.path.read_text()


def test_each_change_replaces_the_file_whole(tmp_path: Path) -> None:
    run = private_dir(tmp_path)
    writer = StatusFile(
        status_path(run, "c8y"), "c8y", "device-001", "pkcs11:object=k", lambda: "TLS 1.2"
    )
    writer.link_up("local")
    writer.link_up("cloud")
    writer.link_down("cloud", "refused\n  fix: register the device")
    status = read_status(run / "status-c8y.json")
    assert status is not None
    assert status.pid == os.getpid() and status.device_id == "device-001"
    assert status.local_link.up and not status.cloud_link.up
    assert status.cloud_link.tls_version == "TLS 1.2"
    assert status.cloud_link.last_error == "refused; fix: register the device"
    assert status.cloud_link.last_error_at is not None
    assert sorted(p.name for p in run.iterdir()) == ["status-c8y.json"]  # no temp file left

    writer.stopped(Counters())
    status = read_status(run / "status-c8y.json")
    assert status is not None and status.stopped_at is not None
    assert not status.local_link.up and status.local_link.since == status.stopped_at


def test_counters_are_written_when_they_change_or_at_the_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = StatusFile(status_path(private_dir(tmp_path), "c8y"), "c8y", "d", "k")
    writes: list[float] = []
    real_write = writer.write

    def counting() -> None:
        writes.append(time.monotonic())
        real_write()

    monkeypatch.setattr(writer, "write", counting)
    writer.counters(Counters())
    writer.counters(Counters())
    assert len(writes) == 1
    writer.counters(Counters(forwarded=EachWay(1, 0)))
    assert len(writes) == 2
    monkeypatch.setattr("edgeagent.bridge.status_file.HEARTBEAT", 0.0)
    writer.counters(Counters(forwarded=EachWay(1, 0)))
    assert len(writes) == 3


def test_a_write_that_fails_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = private_dir(tmp_path)
    writer = StatusFile(status_path(run, "c8y"), "c8y", "d", "k")
    os.rename(run, tmp_path / "gone")  # as root, modes stop nothing: take the directory away
    writer.link_up("local")
    writer.link_down("local", "x")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings  # once, not on every write
    assert warnings[0].startswith(f"cannot write the status file {writer.path}: ")


def test_a_status_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    run = private_dir(tmp_path)
    assert read_status(run / "status-c8y.json") is None
    (run / "status-c8y.json").write_text('{"schema": 99}')
    with pytest.raises(ServiceError, match="not what this agent writes"):
        read_status(run / "status-c8y.json")
    (run / "elsewhere.json").write_text("{}")
    (run / "status-az.json").symlink_to(run / "elsewhere.json")
    with pytest.raises(ServiceError, match="symbolic link is never followed"):
        read_status(run / "status-az.json")


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.last = Counters()

    def link_up(self, link: str) -> None:
        self.events.append(("up", link))

    def link_down(self, link: str, error: str) -> None:
        self.events.append(("down", link, error))

    def counters(self, counters: Counters) -> None:
        self.last = counters
        self.events.append(("counters",))

    def stopped(self, counters: Counters) -> None:
        self.events.append(("stopped",))


def test_the_bridge_reports_links_that_fail_and_its_stop() -> None:
    sink = Sink()
    local = Endpoint("local", "127.0.0.1", free_port(), "bridge", connect_timeout=2)
    cloud = Endpoint("c8y", "127.0.0.1", free_port(), "dev", connect_timeout=2)
    bridge = Bridge(local, cloud, RULES, "health", status=sink)
    stop = threading.Event()
    runner = threading.Thread(target=bridge.run, args=(stop,))
    runner.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len({e[1] for e in sink.events if e[0] == "down"}) < 2:
        time.sleep(0.05)
    stop.set()
    runner.join(10)
    downs = {e[1]: e[2] for e in sink.events if e[0] == "down"}
    assert set(downs) == {"local", "cloud"}
    assert "unreachable" in downs["cloud"] and str(cloud.port) in downs["cloud"]
    assert sink.events[0] == ("counters",)  # at start: the file exists before any connect
    assert sink.events[-1] == ("stopped",)


def test_the_bridge_counts_forwarded_and_in_flight() -> None:
    local_ep = Endpoint("local", "127.0.0.1", 1, "bridge")
    cloud_ep = Endpoint("c8y", "127.0.0.1", 2, "dev")
    bridge = Bridge(local_ep, cloud_ep, RULES, "health", cloud_max_payload=10)
    local_sock, cloud_sock = FakeSocket(), FakeSocket()
    bridge.local.resume(local_sock, present=False)
    bridge.cloud.resume(cloud_sock, present=False)
    for session, sock in ((bridge.local, local_sock), (bridge.cloud, cloud_sock)):
        session.flush()
        sock.packets()

    local_sock.inbox.append(p.publish("c8y/s/us", b"200,T", 1, False, 41))
    local_sock.inbox.append(p.publish("c8y/s/us", b"x" * 11, 1, False, 42))  # over the limit
    local_sock.inbox.append(p.publish("c8y/elsewhere", b"?", 1, False, 43))  # no rule
    bridge.local.on_readable()
    bridge.cloud.flush()
    counters = bridge.counters()
    assert counters.forwarded == EachWay(1, 0)
    assert counters.in_flight == EachWay(1, 0)  # the cloud has not acked yet
    assert counters.dropped == Dropped(oversize=1, no_rule=1)

    [(_, flags, body)] = cloud_sock.packets()
    cloud_sock.inbox.append(p.ack(p.PUBACK, p.parse_publish(flags, body).packet_id))
    bridge.cloud.on_readable()
    assert bridge.counters().in_flight == EachWay(0, 0)

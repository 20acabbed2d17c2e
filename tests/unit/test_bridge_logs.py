"""The bridge's log lines: time, level and cloud on each; one rotated file per cloud."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent.bridge import logs
from edgeagent.bridge.logs import child_thread_name, cloud_of_thread, log_to_files, thread_name

_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO (\w+): (.*)$")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_the_cloud_is_read_off_the_thread_name() -> None:
    assert cloud_of_thread(thread_name("c8y")) == "c8y"
    assert cloud_of_thread("bridge-az:connect-local") == "az"
    assert cloud_of_thread("cert-check-aws") == "aws"
    assert cloud_of_thread("cert-check-aws:reap") == "aws"
    assert cloud_of_thread("MainThread") == "host"
    assert cloud_of_thread("Thread-3 (worker)") == "host"


def _in_thread(name: str, action: object) -> None:
    assert callable(action)
    thread = threading.Thread(target=action, name=name)
    thread.start()
    thread.join()


def test_each_cloud_logs_to_its_own_file_with_time_level_and_cloud(
    tmp_path: Path, restore_logging: None
) -> None:
    log_to_files(tmp_path)
    log = logging.getLogger("edgeagent.bridge")

    def c8y() -> None:
        log.info("c8y broker connected")
        # A thread the cloud's thread starts logs for the same cloud.
        _in_thread(child_thread_name("connect-local"), lambda: log.info("local connected"))

    _in_thread(thread_name("c8y"), c8y)
    _in_thread(thread_name("az"), lambda: log.info("az broker connected"))
    log.info("control socket ready")
    lines = {
        name: (tmp_path / f"bridge-{name}.log").read_text().splitlines()
        for name in ("c8y", "az", "host")
    }
    parsed = {name: [_LINE.match(line) for line in found] for name, found in lines.items()}
    assert all(m is not None for found in parsed.values() for m in found), lines
    assert [(m[1], m[2]) for m in parsed["c8y"] if m] == [
        ("c8y", "c8y broker connected"),
        ("c8y", "local connected"),
    ]
    assert [(m[1], m[2]) for m in parsed["az"] if m] == [("az", "az broker connected")]
    assert [(m[1], m[2]) for m in parsed["host"] if m] == [("host", "control socket ready")]


def test_a_cloud_log_is_rotated_by_size(
    tmp_path: Path, restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    log_to_files(tmp_path)
    log = logging.getLogger("edgeagent.bridge")

    def flood() -> None:
        for i in range(200):
            log.info("line %03d %s", i, "x" * 50)

    _in_thread(thread_name("c8y"), flood)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["bridge-c8y.log", "bridge-c8y.log.1", "bridge-c8y.log.2", "bridge-c8y.log.3"]
    assert all((tmp_path / name).stat().st_size <= 2100 for name in files)
    assert "line 199" in (tmp_path / "bridge-c8y.log").read_text()


def test_a_link_at_a_log_file_is_never_followed(tmp_path: Path, restore_logging: None) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "bridge-c8y.log").symlink_to(victim)
    log_to_files(tmp_path)
    logging.raiseExceptions = False
    try:
        _in_thread(thread_name("c8y"), lambda: logging.getLogger("x").info("hello"))
    finally:
        logging.raiseExceptions = True
    assert victim.read_text() == "precious\n"

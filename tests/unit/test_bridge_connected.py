"""The connected clouds that `agent bridge host` brings up: <config dir>/connected-clouds."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from edgeagent.bridge import connected
from edgeagent.errors import ServiceError


def test_add_and_remove_keep_one_sorted_name_per_line(tmp_path: Path) -> None:
    assert connected.names(tmp_path) == []
    connected.add(tmp_path, "c8y")
    connected.add(tmp_path, "az")
    connected.add(tmp_path, "c8y")
    assert (tmp_path / "connected-clouds").read_text() == "az\nc8y\n"
    assert (tmp_path / "connected-clouds").stat().st_mode & 0o777 == 0o644
    connected.remove(tmp_path, "c8y")
    connected.remove(tmp_path, "aws")
    assert connected.names(tmp_path) == ["az"]
    assert [p.name for p in tmp_path.iterdir()] == ["connected-clouds"]  # no temp file left


def test_lines_that_are_not_cloud_names_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "connected-clouds").write_text("c8y\n\n../etc\n# comment\naz \nC8Y\n")
    assert connected.names(tmp_path) == ["az", "c8y"]
    with pytest.raises(ValueError, match="not cloud names"):
        connected.add(tmp_path, "../x")


def test_concurrent_adds_lose_no_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `agent connect`s at once: both read the file before either replaced it."""
    read = connected.names

    def slow_names(config_dir: Path) -> list[str]:
        found = read(config_dir)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(connected, "names", slow_names)
    adds = [threading.Thread(target=connected.add, args=(tmp_path, name)) for name in ("c8y", "az")]
    for thread in adds:
        thread.start()
    for thread in adds:
        thread.join()
    assert read(tmp_path) == ["az", "c8y"]


def test_a_linked_file_is_never_followed(tmp_path: Path) -> None:
    """L7: a root `agent bridge host` read whatever connected-clouds linked to."""
    (tmp_path / "elsewhere").write_text("c8y\n")
    (tmp_path / "connected-clouds").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ServiceError, match="symbolic link"):
        connected.names(tmp_path)


def test_as_root_a_file_another_user_can_change_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """L7: root starts the clouds it names."""
    monkeypatch.setattr(connected.os, "geteuid", lambda: 0)
    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o755)
    (config_dir / "connected-clouds").write_text("c8y\n")
    assert connected.names(config_dir) == ["c8y"]
    (config_dir / "connected-clouds").chmod(0o666)
    with pytest.raises(ServiceError, match="can be changed by every user"):
        connected.names(config_dir)


def test_a_fifo_at_its_name_is_refused_not_waited_on(tmp_path: Path) -> None:
    """N9: the open blocked until a writer came; `agent bridge host` hung."""
    os.mkfifo(connected.path(tmp_path))
    result: list[BaseException | list[str]] = []

    def read() -> None:
        try:
            result.append(connected.names(tmp_path))
        except BaseException as error:  # the outcome, whatever it is
            result.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the open so the thread ends
        os.close(os.open(connected.path(tmp_path), os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        pytest.fail("names() blocked on a FIFO")
    assert isinstance(result[0], ServiceError) and "not a regular file" in result[0].cause

"""The bridge's log lines: a timestamp, a level and the cloud, on every line.

    2026-12-01T18:00:00.123Z INFO c8y: c8y broker connected (localhost:8883)

    log_to_stream(sys.stderr)              # foreground and systemd (the journal)
    log_to_files(Path("/var/log/agent"))   # the detached bridge host

Each cloud's bridge runs in a thread named ``bridge-<cloud>``; the threads it
starts are named after it (``bridge-c8y:connect-local``,
``cert-check-c8y``...), so the cloud of a record is read off its thread name.
Records of the host itself (its control socket) say ``host``.

The detached host (`agent connect` outside systemd) writes one file per
cloud, ``logs.path/bridge-<cloud>.log`` (and ``bridge-host.log``), each
rotated at ``MAX_BYTES`` with ``BACKUPS`` old files kept: at most 4 MiB per
cloud. What runs in the foreground (``agent bridge host``, systemd's
agent-bridge.service, whose stderr is the journal; ``agent bridge run``;
containers) logs to stderr, no file: the journal and container runtimes
rotate on their own.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO

from edgeagent.errors import ServiceError
from edgeagent.safe_files import ensure_private_dir, open_no_follow

MAX_BYTES = 1024 * 1024
BACKUPS = 3
HOST = "host"
"""The ``cloud`` of a record that belongs to no cloud (the host's own)."""
FORMAT = "%(asctime)s %(levelname)s %(cloud)s: %(message)s"

_THREAD_PREFIXES = ("bridge-", "cert-check-")


def log_file_for(log_dir: Path, cloud: str) -> Path:
    """``logs.path/bridge-<cloud>.log`` (``HOST``: the host's own records)."""
    return log_dir / f"bridge-{cloud}.log"


def thread_name(cloud: str) -> str:
    """The name of the thread that runs ``cloud``'s bridge."""
    return f"bridge-{cloud}"


def cloud_of_thread(name: str) -> str:
    """The cloud a thread works for (see the module docstring), else ``HOST``."""
    for prefix in _THREAD_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :].split(":", 1)[0] or HOST
    return HOST


def child_thread_name(what: str) -> str:
    """A name for a thread the current one starts: it logs for the same cloud."""
    return f"{threading.current_thread().name}:{what}"


class _AddCloud(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "cloud"):
            record.cloud = cloud_of_thread(record.threadName or "")
        return True


class _OnlyCloud(logging.Filter):
    def __init__(self, cloud: str) -> None:
        super().__init__()
        self.cloud = cloud

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "cloud", HOST) == self.cloud


class UtcFormatter(logging.Formatter):
    """ISO 8601 in UTC with milliseconds: ``2026-12-01T18:00:00.123Z``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


def _reset(level: int) -> logging.Logger:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    return root


def log_to_stream(stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """Every record on ``stream`` (stderr): the foreground bridge, the journal."""
    root = _reset(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_AddCloud())
    handler.setFormatter(UtcFormatter(FORMAT))
    root.addHandler(handler)


class _NoFollowRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotating file that is never opened through a link planted at its name."""

    def _open(self) -> io.TextIOWrapper:
        fd = open_no_follow(Path(self.baseFilename), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return open(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)


class CloudFiles(logging.Handler):
    """One rotating file per cloud under ``log_dir``, opened on the cloud's first record."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.log_dir = log_dir
        self._files: dict[str, logging.Handler] = {}
        self._formatter = UtcFormatter(FORMAT)
        self.addFilter(_AddCloud())

    def path_for(self, cloud: str) -> Path:
        return log_file_for(self.log_dir, cloud)

    def emit(self, record: logging.LogRecord) -> None:
        cloud = getattr(record, "cloud", HOST)
        handler = self._files.get(cloud)
        if handler is None:
            try:
                handler = _NoFollowRotatingFile(
                    self.path_for(cloud), maxBytes=MAX_BYTES, backupCount=BACKUPS, delay=False
                )
            except (OSError, ServiceError):
                self.handleError(record)
                return
            handler.setFormatter(self._formatter)
            self._files[cloud] = handler
        handler.handle(record)

    def close(self) -> None:
        for handler in self._files.values():
            handler.close()
        self._files.clear()
        super().close()


def log_to_files(log_dir: Path, level: int = logging.INFO) -> CloudFiles:
    """Each cloud's records to ``log_dir/bridge-<cloud>.log``, rotated by size."""
    ensure_private_dir(log_dir, "logs.path")
    root = _reset(level)
    files = CloudFiles(log_dir)
    root.addHandler(files)
    return files


def size_of(path: Path) -> int:
    """``path``'s size now (0 when it is not there): where a new start's lines begin."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_tail(path: Path, start: int = 0, lines: int = 15) -> str:
    """The last ``lines`` of the log at ``path`` written from offset ``start`` on."""
    try:
        with path.open("rb") as handle:
            if start <= os.fstat(handle.fileno()).st_size:
                handle.seek(start)
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(nothing in the log since the start)"

"""What a running bridge is doing, for `agent status`: one JSON file per cloud in run.path.

    status = StatusFile(run_dir / "status-c8y.json", "c8y", device_id, key_uri,
                        tls_version=lambda: tls.last_handshake.version)
    Bridge(local, cloud, rules, health_topic, status=status)   # it reports to it
    read_status(run_dir / "status-c8y.json")                    # BridgeStatus or None

The bridge reports each link going up or down at once, and its counters at
most twice a second while they move (``status_feed.STATUS_EVERY``); the file
is rewritten on every link change, when the counters changed, and every
``HEARTBEAT`` seconds anyway, so that for a bridge that died without a word a reader still knows
about when it last ran (``updated_at``). A clean stop writes ``stopped_at``.

Each write is atomic (a temp file in the same private directory, then
rename): a reader never sees half a file. The file holds the key URI (never a
PIN) and the device id; no secret. Lean, like the rest of the bridge runtime:
no pydantic, no paho.

The JSON, ``schema`` 1 (times are UTC, ISO 8601, ``Z``; null when unknown)::

    {"schema": 1, "cloud": "c8y", "pid": 1234, "started_at": "2026-12-01T18:04:08Z",
     "updated_at": "...", "stopped_at": null, "device_id": "device-001",
     "key_uri": "pkcs11:token=...;object=device-key;type=private",
     "cloud_link": {"up": true, "since": "...", "last_error": null,
                    "last_error_at": null, "tls_version": "TLS 1.3"},
     "local_link": {"up": true, "since": "...", "last_error": null,
                    "last_error_at": null, "tls_version": null},
     "forwarded": {"to_cloud": 12, "to_local": 3},
     "in_flight": {"to_cloud": 0, "to_local": 0},
     "dropped": {"oversize": 0, "no_rule": 0, "qos0_link_down": 0},
     "updated_uptime": 812.4}

``updated_uptime`` is the boot clock (CLOCK_BOOTTIME, seconds) at
``updated_at``: `agent status` judges a file stale on it, never on the wall
clock that NTP may step after boot (absent in older files: the wall clock).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeagent.errors import ServiceError
from edgeagent.safe_files import ensure_private_dir, open_no_follow

log = logging.getLogger("edgeagent.bridge")

SCHEMA = 1
HEARTBEAT = 30.0
"""Rewrite the file at least this often (seconds) while the bridge runs."""

CLOUD_LINK = "cloud"
LOCAL_LINK = "local"


@dataclass
class LinkStatus:
    """One broker connection: up or down since when, and the last error."""

    up: bool = False
    since: float | None = None  # when it last went up or down (epoch seconds)
    last_error: str | None = None
    last_error_at: float | None = None
    tls_version: str | None = None  # the cloud link's, once it has been up


@dataclass
class EachWay:
    to_cloud: int = 0
    to_local: int = 0


@dataclass
class Dropped:
    oversize: int = 0  # over the cloud's payload limit
    no_rule: int = 0  # a broker sent a topic no rule maps
    qos0_link_down: int = 0  # QoS 0 with the other side down, as QoS 0 allows


@dataclass
class Counters:
    """What the bridge counts since it started (``Bridge.counters()``)."""

    forwarded: EachWay = field(default_factory=EachWay)
    in_flight: EachWay = field(default_factory=EachWay)
    dropped: Dropped = field(default_factory=Dropped)


@dataclass
class BridgeStatus:
    """The status file's content (see the module docstring for its JSON)."""

    cloud: str
    pid: int
    started_at: float
    device_id: str
    key_uri: str
    updated_at: float = 0.0
    stopped_at: float | None = None
    cloud_link: LinkStatus = field(default_factory=LinkStatus)
    local_link: LinkStatus = field(default_factory=LinkStatus)
    counters: Counters = field(default_factory=Counters)
    updated_uptime: float | None = None
    """CLOCK_BOOTTIME at ``updated_at``: an NTP step never moves it (N8)."""

    def link(self, name: str) -> LinkStatus:
        return self.cloud_link if name == CLOUD_LINK else self.local_link

    def to_json(self) -> dict[str, Any]:
        def when(value: float | None) -> str | None:
            return None if value is None else iso_time(value)

        def link(state: LinkStatus) -> dict[str, Any]:
            return {
                "up": state.up,
                "since": when(state.since),
                "last_error": state.last_error,
                "last_error_at": when(state.last_error_at),
                "tls_version": state.tls_version,
            }

        return {
            "schema": SCHEMA,
            "cloud": self.cloud,
            "pid": self.pid,
            "started_at": iso_time(self.started_at),
            "updated_at": iso_time(self.updated_at),
            "stopped_at": when(self.stopped_at),
            "device_id": self.device_id,
            "key_uri": self.key_uri,
            "cloud_link": link(self.cloud_link),
            "local_link": link(self.local_link),
            "forwarded": asdict(self.counters.forwarded),
            "in_flight": asdict(self.counters.in_flight),
            "dropped": asdict(self.counters.dropped),
            "updated_uptime": self.updated_uptime,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BridgeStatus:
        """The inverse of :meth:`to_json`; KeyError, TypeError or ValueError if malformed."""

        def when(value: Any) -> float | None:
            return None if value is None else parse_time(value)

        def link(data: dict[str, Any]) -> LinkStatus:
            return LinkStatus(
                up=bool(data["up"]),
                since=when(data["since"]),
                last_error=data["last_error"],
                last_error_at=when(data["last_error_at"]),
                tls_version=data["tls_version"],
            )

        if raw.get("schema") != SCHEMA:
            raise ValueError(f"schema {raw.get('schema')!r}, not {SCHEMA}")
        return cls(
            cloud=str(raw["cloud"]),
            pid=int(raw["pid"]),
            started_at=parse_time(raw["started_at"]),
            updated_at=parse_time(raw["updated_at"]),
            stopped_at=when(raw["stopped_at"]),
            device_id=str(raw["device_id"]),
            key_uri=str(raw["key_uri"]),
            cloud_link=link(raw["cloud_link"]),
            local_link=link(raw["local_link"]),
            updated_uptime=_optional_float(raw.get("updated_uptime")),
            counters=Counters(
                forwarded=EachWay(**raw["forwarded"]),
                in_flight=EachWay(**raw["in_flight"]),
                dropped=Dropped(**raw["dropped"]),
            ),
        )


def iso_time(seconds: float) -> str:
    """``2026-12-01T18:04:08Z``: epoch seconds as UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


_PIN_ATTRIBUTE = re.compile(r"([?&])pin-value=[^&]*&?")


def without_pin(key_uri: str) -> str:
    """``key_uri`` without a ``pin-value`` query attribute (the configuration refuses
    one, but this file must never hold a PIN whatever handed us the URI)."""
    cleaned = _PIN_ATTRIBUTE.sub(lambda m: m.group(1), key_uri)
    return cleaned.rstrip("?&")


def status_path(run_dir: Path, cloud: str) -> Path:
    """Where the bridge for ``cloud`` keeps its status: ``run.path/status-<cloud>.json``."""
    return run_dir / f"status-{cloud}.json"


class StatusFile:
    """Keeps ``path`` up to date with what the bridge reports (``status_feed.StatusSink``)."""

    def __init__(
        self,
        path: Path,
        cloud: str,
        device_id: str,
        key_uri: str,
        tls_version: Callable[[], str] | None = None,
    ) -> None:
        self.path = path
        ensure_private_dir(path.parent, "run.path")
        now = time.time()
        self.status = BridgeStatus(cloud, os.getpid(), now, device_id, without_pin(key_uri))
        self._tls_version = tls_version
        self._written_at = 0.0  # monotonic
        self._written_counters: Counters | None = None
        self._last_problem = ""

    # -- what the bridge reports ----------------------------------------------------------

    def link_up(self, link: str) -> None:
        state = self.status.link(link)
        state.up, state.since = True, time.time()
        if link == CLOUD_LINK and self._tls_version is not None:
            state.tls_version = self._tls_version() or None
        self.write()

    def link_down(self, link: str, error: str) -> None:
        state = self.status.link(link)
        # One line: our errors end with "\n  fix: ..." (AgentError.__str__).
        error = "; ".join(line.strip() for line in error.splitlines() if line.strip())
        now = time.time()
        if state.up or state.since is None:
            state.since = now
        state.up = False
        state.last_error, state.last_error_at = error, now
        self.write()

    def counters(self, counters: Counters) -> None:
        """The latest counters; written when they changed, or at the heartbeat."""
        self.status.counters = counters
        changed = counters != self._written_counters
        if changed or time.monotonic() - self._written_at >= HEARTBEAT:
            self.write()

    def stopped(self, counters: Counters) -> None:
        self.status.counters = counters
        self.status.stopped_at = time.time()
        for state in (self.status.cloud_link, self.status.local_link):
            if state.up:
                state.up, state.since = False, self.status.stopped_at
        self.write()

    # -- the file -----------------------------------------------------------------------

    def write(self) -> None:
        """Replace the file atomically; a failure is logged, never fatal to the bridge."""
        self.status.updated_at = time.time()
        self.status.updated_uptime = uptime()
        data = json.dumps(self.status.to_json(), indent=1).encode() + b"\n"
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()  # a crashed writer's leftover with our pid
            fd = open_no_follow(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            # Whatever the umask (the systemd unit's is 0077): monitoring may run
            # `agent status` as another user, and the file holds no secret.
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, self.path)
        except (OSError, ServiceError) as error:
            with contextlib.suppress(OSError):
                temp.unlink()
            problem = str(error)
            if problem != self._last_problem:  # once per kind of failure, not every write
                log.warning("cannot write the status file %s: %s", self.path, problem)
                self._last_problem = problem
            return
        self._last_problem = ""
        self._written_at = time.monotonic()
        self._written_counters = self.status.counters


def read_status(path: Path) -> BridgeStatus | None:
    """The status file at ``path``; None if there is none. ServiceError if it is unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ServiceError(
            f"cannot read the bridge's status file {path}: {error.strerror} "
            "(a symbolic link is never followed)",
            f"remove it (rm {path}); the bridge writes it again",
        ) from error
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(1 << 20)
    try:
        return BridgeStatus.from_json(json.loads(data))
    except (KeyError, TypeError, ValueError) as error:
        raise ServiceError(
            f"the bridge's status file {path} is not what this agent writes ({error})",
            f"remove it (rm {path}); the bridge writes it again",
        ) from error


def uptime() -> float:
    """Seconds since boot (CLOCK_BOOTTIME): the same in every process, never stepped."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)

"""The bridge's daily certificate check, where no systemd timer does it.

Under systemd, ``agent-cert-renew@<cloud>.timer`` (packaging/) runs
``agent cert renew <cloud> --if-expiring-within 30d`` once a day. A bridge
started without systemd (detached, with a pid file) runs the same command
itself: a first check a few minutes after start, then every 24 h, each with
a random jitter so a fleet restarted at once does not renew at once.

    checker = DailyCertCheck(CertCheck(cloud, config_dir, stamp_path))
    checker.start(stop)       # a daemon thread; ends when ``stop`` is set

The renewal reconnects the bridge, i.e. stops this very process: the command
runs in its own session with no inherited descriptor beyond stdio (its output
goes to the bridge's log), so it outlives the bridge it restarts. One check
at a time; a failed check is not retried before the next day's. The stamp
file records when the last check started, so a bridge that restarts (after a
renewal, or in a crash loop) still checks once a day, not once per start.

For tests only, two environment variables override the timing (seconds,
before jitter): ``EDGEAGENT_CERT_CHECK_FIRST_DELAY`` (default 300) and
``EDGEAGENT_CERT_CHECK_INTERVAL`` (default 86400). Only the bridge runtime
reads them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeagent.errors import ServiceError
from edgeagent.safe_files import open_no_follow

log = logging.getLogger("edgeagent.bridge")

FIRST_DELAY = 300.0
INTERVAL = 86400.0
RENEW_WITHIN = "30d"  # as packaging/agent-cert-renew@.service
FIRST_DELAY_VARIABLE = "EDGEAGENT_CERT_CHECK_FIRST_DELAY"
INTERVAL_VARIABLE = "EDGEAGENT_CERT_CHECK_INTERVAL"


@dataclass(frozen=True)
class CertCheck:
    """What the runtime needs for the check: the cloud, the config dir, the stamp file."""

    cloud: str
    config_dir: str
    stamp_path: str

    def command(self) -> list[str]:
        """``agent cert renew <cloud> --if-expiring-within 30d``, as the timer runs it."""
        return [
            sys.executable,
            "-m",
            "edgeagent",
            "--config-dir",
            self.config_dir,
            "cert",
            "renew",
            self.cloud,
            "--if-expiring-within",
            RENEW_WITHIN,
        ]


@dataclass(frozen=True)
class Timing:
    first_delay: float
    interval: float

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Timing:
        env = os.environ if environ is None else environ
        return cls(
            _seconds(env, FIRST_DELAY_VARIABLE, FIRST_DELAY),
            _seconds(env, INTERVAL_VARIABLE, INTERVAL),
        )

    def first_wait(self, since_last: float | None, rng: random.Random) -> float:
        """Seconds to the first check: a few minutes (plus up to as much again at
        random), but not before a day (± jitter) has passed since the last one."""
        wait = self.first_delay * rng.uniform(1.0, 2.0)
        if since_last is not None and 0 <= since_last < self.interval:
            wait = max(wait, self.next_wait(rng) - since_last)
        return wait

    def next_wait(self, rng: random.Random) -> float:
        """The interval ± 5 % (24 h ± 72 min)."""
        return self.interval * rng.uniform(0.95, 1.05)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", name, text)
        return default
    if value <= 0:
        log.warning("ignoring %s=%r: not a positive number of seconds", name, text)
        return default
    return value


class DailyCertCheck:
    def __init__(
        self, check: CertCheck, timing: Timing | None = None, *, output: Path | None = None
    ) -> None:
        self.check = check
        self.timing = timing or Timing.from_environment()
        self.output = output
        """The command's stdout and stderr (the cloud's log file); None: ours."""
        self._rng = random.Random()  # noqa: S311 (jitter, not a secret)
        self._running: subprocess.Popen[bytes] | None = None

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(
            target=self._loop, args=(stop,), name=f"cert-check-{self.check.cloud}", daemon=True
        )
        thread.start()
        return thread

    def _loop(self, stop: threading.Event) -> None:
        wait = self.timing.first_wait(self._since_last(), self._rng)
        while True:
            log.info("certificate check for %s: next in %s", self.check.cloud, _duration(wait))
            if stop.wait(wait):
                return
            self.run_once()
            wait = self.timing.next_wait(self._rng)

    def run_once(self) -> subprocess.Popen[bytes] | None:
        """Start the check unless one still runs; the child is reaped by a thread."""
        if self._running is not None and self._running.poll() is None:
            log.warning(
                "certificate check for %s: the previous one (pid %d) still runs; skipped",
                self.check.cloud,
                self._running.pid,
            )
            return None
        self._stamp()
        command = self.check.command()
        output: int | None = None
        try:
            if self.output is not None:
                output = open_no_follow(self.output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,  # survives the bridge restart it causes
                close_fds=True,  # never the pid file's lock nor a socket
            )
        except (OSError, ServiceError) as error:
            log.error("certificate check for %s: cannot start it: %s", self.check.cloud, error)
            return None
        finally:
            if output is not None:
                os.close(output)
        log.info(
            "certificate check for %s: running `agent cert renew %s --if-expiring-within %s`"
            " (pid %d)",
            self.check.cloud,
            self.check.cloud,
            RENEW_WITHIN,
            child.pid,
        )
        self._running = child
        threading.Thread(
            target=self._reap,
            args=(child,),
            name=f"cert-check-{self.check.cloud}:reap",
            daemon=True,
        ).start()
        return child

    def _reap(self, child: subprocess.Popen[bytes]) -> None:
        code = child.wait()
        if code == 0:
            log.info("certificate check for %s: done", self.check.cloud)
        else:
            log.error(
                "certificate check for %s failed (exit %d): the certificate stays as it was;"
                " next check in a day (see the lines above)",
                self.check.cloud,
                code,
            )

    def _since_last(self) -> float | None:
        try:
            return time.time() - Path(self.check.stamp_path).stat().st_mtime
        except OSError:
            return None

    def _stamp(self) -> None:
        path = Path(self.check.stamp_path)
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            os.close(fd)
            os.utime(path)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"

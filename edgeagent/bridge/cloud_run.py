"""One cloud's bridge in a thread of its own, holding the cloud's pid file.

    run = CloudRun(plan, pid_file, cert_check_output)
    error = run.start()          # None once the bridge runs; else this start's error
    run.stop.set(); run.thread.join()

    error = run_foreground(plan, pid_file, stop)    # `agent bridge run c8y`: one cloud

The bridge host (host.py) runs one of these per connected cloud; a cloud
whose thread ends with an error releases its pid file, keeps its error
(``describe``) and never touches the others.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from edgeagent.bridge import timeouts
from edgeagent.bridge.logs import thread_name
from edgeagent.bridge.pidfile import hold_pid_file
from edgeagent.bridge.plan import BridgePlan
from edgeagent.bridge.runtime import prepare
from edgeagent.errors import AgentError, ServiceError

log = logging.getLogger("edgeagent.bridge")


class CloudRun:
    """One cloud's bridge in its own thread, holding the cloud's pid file."""

    def __init__(self, plan: BridgePlan, pid_file: Path, cert_check_output: Path | None) -> None:
        self.plan = plan
        self.pid_file = pid_file
        self.cert_check_output = cert_check_output
        self.stop = threading.Event()
        self.ready = threading.Event()
        """Set once the bridge runs (key open, pid file held), or the start failed."""
        self.error: AgentError | None = None
        self.ran = False
        """Set once its bridge ran (its start succeeded, and no stop came first)."""
        self.since = time.time()
        self.thread = threading.Thread(target=self._main, name=thread_name(plan.cloud), daemon=True)

    @property
    def cloud(self) -> str:
        return self.plan.cloud

    @property
    def running(self) -> bool:
        return self.thread.is_alive() and self.error is None

    def start(self, timeout: float | None = None) -> AgentError | None:
        """Start the thread; the start's error, or None once the bridge runs
        (``timeout``: timeouts.CLOUD_START)."""
        self.thread.start()
        return self.wait_started(timeout)

    def wait_started(self, timeout: float | None = None) -> AgentError | None:
        """After ``thread.start()``: the start's error, or None once the bridge runs."""
        timeout = timeouts.CLOUD_START if timeout is None else timeout
        if not self.ready.wait(timeout):
            # Abandoned: the thread may still finish opening the key, but then
            # stops at once, and it never counts as running (N1).
            self.error = ServiceError(
                f"the {self.cloud} bridge did not start within {timeout:.0f} s "
                "(opening the key, or the token, is stuck)",
                f"see the {self.cloud} bridge's log",
            )
            self.stop.set()
            return self.error
        return self.error

    def _main(self) -> None:
        try:
            with hold_pid_file(self.pid_file):
                prepared = prepare(self.plan, self.cert_check_output)
                try:
                    self.ready.set()
                    self.ran = not self.stop.is_set()
                    prepared.run(self.stop)
                finally:
                    prepared.close()
        except AgentError as error:
            if not self.stop.is_set() or self.error is None:  # keep an abandoned start's error
                self.error = error
            log.error("the %s bridge stopped: %s", self.cloud, error)
        except Exception as error:  # a bug: this cloud stops, the others go on
            log.exception("the %s bridge failed", self.cloud)
            self.error = ServiceError(
                f"the {self.cloud} bridge failed: {type(error).__name__}: {error}",
                f"see the {self.cloud} bridge's log",
            )
        finally:
            self.ready.set()
        log.info("the %s bridge stopped", self.cloud)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"running": self.running, "since": round(self.since, 3)}
        if self.error is not None:
            out["error"] = type(self.error).__name__
            out["message"] = self.error.cause
            out["fix"] = self.error.fix
        return out


def run_foreground(plan: BridgePlan, pid_file: Path, stop: threading.Event) -> AgentError | None:
    """``plan``'s cloud in this process only (`agent bridge run`), until ``stop``."""
    run = CloudRun(plan, pid_file, None)
    error = run.start()
    if error is not None:
        return error
    while run.thread.is_alive() and not stop.wait(timeouts.POLL):
        pass
    run.stop.set()
    run.thread.join(timeouts.CLOUD_STOP)
    return run.error

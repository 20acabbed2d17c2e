"""Start a cloud in the bridge host: ask the running host, or become it.

code = start_in_host(plan, run_dir, log_dir, stop, exit_code_for, report)
# becomes the host (and returns when its last cloud stops), or hands the
# plan to the host that runs already and returns its answer's exit code

code = serve_in_foreground(plans, run_dir, stop, exit_code_for)
# `agent bridge host` (systemd's agent-bridge.service, containers): the
# host with the connected clouds, in this process until the last one stops
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from edgeagent.bridge import control, timeouts
from edgeagent.bridge.holder import HOST_PID_FILE
from edgeagent.bridge.host import BridgeHost, ExitCodeFor, control_socket
from edgeagent.bridge.logs import HOST, log_file_for, log_to_files
from edgeagent.bridge.pidfile import hold_pid_file
from edgeagent.bridge.plan import BridgePlan
from edgeagent.errors import AgentError, BridgeAlreadyRunning, ServiceError

log = logging.getLogger("edgeagent.bridge")

Report = Callable[[dict[str, Any]], None]


def start_in_host(
    plan: BridgePlan,
    run_dir: Path,
    log_dir: Path | None,
    stop: threading.Event,
    exit_code_for: ExitCodeFor,
    report: Report,
    *,
    may_host: bool = True,
    op: str = "start",
) -> int:
    """Start ``plan``'s cloud in the bridge host: ask the running one, or become it.

    ``report`` gets the start's reply (ok, or this start's error) as soon as
    it is known; the return value is the exit code: the host's when this
    process became the host and its last cloud stopped, else the reply's.
    ``may_host`` False (under systemd, where the unit is the host): only ask.
    ``op`` "restart": the host stops the cloud's running bridge first.
    Once this process is the host it logs to ``log_dir`` (None: stderr).
    """
    deadline = time.monotonic() + timeouts.JOIN
    hint = _host_log_hint(log_dir)
    while True:
        try:
            reply = control.request(
                run_dir,
                {"op": op, "plan": json.loads(plan.to_json())},
                timeouts.CONTROL_START,
                hint,
            )
        except control.ControlUnavailable:
            pass
        except ServiceError:
            # No answer in time: this command reports a failure, so the host
            # must not go on to start the cloud after all.
            _withdraw(run_dir, plan.cloud, hint)
            raise
        else:
            report(reply)
            return 0 if reply["ok"] else int(reply.get("exit_code", 80))
        if may_host:
            with ExitStack() as held:
                try:
                    held.enter_context(hold_pid_file(run_dir / HOST_PID_FILE))
                except BridgeAlreadyRunning:
                    pass  # a host is binding its socket, or exiting: ask again
                else:
                    if log_dir is not None:
                        log_to_files(log_dir)
                    return _be_host(plan, run_dir, log_dir, stop, exit_code_for, report)
        if time.monotonic() > deadline:
            raise ServiceError(
                f"no bridge host answers on {control.socket_path(run_dir)}", f"see {hint}"
            )
        time.sleep(0.05)


def _host_log_hint(log_dir: Path | None) -> str:
    """Where the host logs: its file, or (None: under systemd) the unit's journal."""
    if log_dir is None:
        return "the bridge host's journal (journalctl -u agent-bridge.service)"
    return str(log_file_for(log_dir, HOST))


def _withdraw(run_dir: Path, cloud: str, hint: str) -> None:
    """Ask the host to stop ``cloud`` whose start this command gave up on (best effort)."""
    try:
        control.request(run_dir, {"op": "stop", "cloud": cloud}, timeouts.CONTROL_STOP, hint)
    except AgentError as error:
        log.warning("could not withdraw the start of %s: %s", cloud, error)


def _be_host(
    plan: BridgePlan,
    run_dir: Path,
    log_dir: Path | None,
    stop: threading.Event,
    exit_code_for: ExitCodeFor,
    report: Report,
) -> int:
    host = BridgeHost(run_dir, log_dir, exit_code_for)
    log.info("bridge host started (pid %d)", os.getpid())
    with control_socket(run_dir) as listener:
        reply = host.start(plan)
        try:
            report(reply)
        except OSError as error:  # the starting command gave up: the cloud runs on
            log.warning("could not report the start of %s: %s", plan.cloud, error)
        if not reply["ok"]:
            return int(reply["exit_code"])
        host.serve(listener, stop)
    log.info("bridge host stopped: no cloud left to serve")
    return 0


def serve_in_foreground(
    plans: list[BridgePlan],
    run_dir: Path,
    stop: threading.Event,
    exit_code_for: ExitCodeFor,
    never_retry: frozenset[int] = frozenset(),
) -> int:
    """The host with ``plans``' clouds, until ``stop`` or its last cloud stops.

    A cloud that fails to start is logged; while the others run it is
    started again with back-off, unless its exit code is in ``never_retry``
    (a wrong PIN: never retried), and `agent disconnect` withdraws it. When
    none starts, or the last one ends with an error nobody asked for, the
    exit code is that failure's, so systemd restarts the host or not
    (RestartPreventExitStatus=).
    """
    with hold_pid_file(run_dir / HOST_PID_FILE), control_socket(run_dir) as listener:
        host = BridgeHost(run_dir, None, exit_code_for)
        log.info("bridge host started (pid %d) for %s", os.getpid(), _names(plans))
        failures: list[dict[str, Any]] = []
        replies: list[dict[str, Any]] = []
        for plan in plans:
            reply = host.start(plan)
            replies.append(reply)
            if not reply["ok"]:
                failures.append(reply)
                log.error(
                    "%s not started: %s (fix: %s)", plan.cloud, reply["message"], reply["fix"]
                )
        if not host.running:
            log.info("bridge host stopped: no cloud running")
            return int(failures[0]["exit_code"]) if failures else 0
        for plan, reply in zip(plans, replies, strict=True):
            if not reply["ok"] and int(reply["exit_code"]) not in never_retry:
                host.retry_later(plan)
        retries = threading.Thread(
            target=_retry_failed, args=(host, stop, never_retry), name="retry", daemon=True
        )
        retries.start()
        host.serve(listener, stop)
        failure = None if stop.is_set() else host.failure()
    if failure is not None:
        # A connected cloud ended on its own (not disconnected): systemd must
        # see a failure and restart the host (RestartPreventExitStatus= applies).
        log.error("bridge host stopped: %s", failure)
        return exit_code_for(failure)
    log.info("bridge host stopped")
    return 0


def _retry_failed(host: BridgeHost, stop: threading.Event, never_retry: frozenset[int]) -> None:
    """Start the clouds that wait for a retry again, backing off, until none waits."""
    delay = timeouts.RETRY_FIRST
    while host.retrying() and not stop.wait(delay):
        for cloud in host.retrying():
            reply = host.retry(cloud, never_retry)
            if reply is None:
                continue
            if reply["ok"]:
                log.info("%s started on a retry", cloud)
            elif cloud in host.retrying():
                log.warning("%s still not started: %s (retrying)", cloud, reply["message"])
            else:
                log.error("%s not started: %s (fix: %s)", cloud, reply["message"], reply["fix"])
        delay = min(delay * 2, timeouts.RETRY_MAX)


def _names(plans: list[BridgePlan]) -> str:
    return ", ".join(plan.cloud for plan in plans) or "no cloud"

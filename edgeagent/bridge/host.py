"""One process serving every connected cloud: a thread per cloud, a control socket.

    code = start_in_host(plan, run_dir, log_dir, stop, exit_code_for, report)
    # becomes the host (and returns when its last cloud stops), or hands the
    # plan to the host that runs already and returns its answer's exit code

    code = serve_in_foreground(plans, run_dir, stop, exit_code_for)
    # `agent bridge host` (systemd's agent-bridge.service, containers): the
    # host with the connected clouds, in this process until the last one stops

    error = run_foreground(plan, pid_file, stop)    # `agent bridge run c8y`: one cloud

Three bridge processes cost 80 MB of proportional memory together (one
interpreter, cryptography and the token's module each); one process with a
thread per cloud about a third of that (docs/benchmarks.md). Each cloud
still starts and stops on its own: its thread has its own plan, key
session, TLS context, ``Bridge``, stop event and daily certificate check,
and holds ``run.path/bridge-<cloud>.pid`` (flock) while it runs. A cloud
whose thread ends with an error (a wrong PIN, a certificate that does not
match) releases its pid file, keeps its error for ``list``, and never
touches the others. The host holds ``run.path/bridge-host.pid`` and serves
``run.path/bridge.sock`` (control.py); it exits when its last cloud stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from edgeagent.bridge import control, timeouts
from edgeagent.bridge.holder import HOST_PID_FILE, pid_file_for
from edgeagent.bridge.logs import log_file_for, log_to_files, thread_name
from edgeagent.bridge.pidfile import hold_pid_file
from edgeagent.bridge.plan import BridgePlan
from edgeagent.bridge.runtime import prepare
from edgeagent.errors import AgentError, BridgeAlreadyRunning, ServiceError
from edgeagent.protocol.frame import FrameError, FrameStream, PeerClosed

log = logging.getLogger("edgeagent.bridge")

POLL = 0.2

ExitCodeFor = Callable[[AgentError], int]
Report = Callable[[dict[str, Any]], None]


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
        self.since = time.time()
        self.thread = threading.Thread(target=self._main, name=thread_name(plan.cloud), daemon=True)

    @property
    def cloud(self) -> str:
        return self.plan.cloud

    @property
    def running(self) -> bool:
        return self.thread.is_alive() and self.error is None

    def start(self, timeout: float = timeouts.CLOUD_START) -> AgentError | None:
        """Start the thread; the start's error, or None once the bridge runs."""
        self.thread.start()
        if not self.ready.wait(timeout):
            self.stop.set()
            return ServiceError(
                f"the {self.cloud} bridge did not start within {timeout:.0f} s "
                "(opening the key, or the token, is stuck)",
                f"see the {self.cloud} bridge's log",
            )
        return self.error

    def _main(self) -> None:
        try:
            with hold_pid_file(self.pid_file):
                prepared = prepare(self.plan, self.cert_check_output)
                try:
                    self.ready.set()
                    prepared.run(self.stop)
                finally:
                    prepared.close()
        except AgentError as error:
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
    while run.thread.is_alive() and not stop.wait(POLL):
        pass
    run.stop.set()
    run.thread.join(timeouts.CLOUD_STOP)
    return run.error


class BridgeHost:
    """The clouds of the host process, by name.

    ``serve`` answers each control connection in a thread of its own, so a
    request never waits behind another cloud's slow start; a per-cloud lock
    keeps one cloud's start and stop in order.
    """

    def __init__(self, run_dir: Path, log_dir: Path | None, exit_code_for: ExitCodeFor) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.exit_code_for = exit_code_for
        self.clouds: dict[str, CloudRun] = {}
        self._lock = threading.Lock()
        """Guards ``clouds``, ``_cloud_locks`` and ``_in_flight``."""
        self._cloud_locks: dict[str, threading.Lock] = {}
        self._in_flight = 0
        self._retry: dict[str, BridgePlan] = {}
        """Clouds whose start failed for a reason that may pass (serve_in_foreground)."""

    def _cloud_lock(self, cloud: str) -> threading.Lock:
        with self._lock:
            return self._cloud_locks.setdefault(cloud, threading.Lock())

    def _runs(self) -> list[CloudRun]:
        with self._lock:
            return list(self.clouds.values())

    def _error(self, error: AgentError) -> dict[str, Any]:
        return control.error_reply(error, self.exit_code_for(error))

    @property
    def running(self) -> list[str]:
        return [run.cloud for run in self._runs() if run.running]

    def start(self, plan: BridgePlan) -> dict[str, Any]:
        with self._cloud_lock(plan.cloud):
            with self._lock:  # this start replaces a pending retry
                self._retry.pop(plan.cloud, None)
            return self._start(plan)

    def _start(self, plan: BridgePlan) -> dict[str, Any]:
        current = self.clouds.get(plan.cloud)
        if current is not None and current.thread.is_alive():
            return self._error(
                BridgeAlreadyRunning(
                    f"the {plan.cloud} bridge is already running (pid {os.getpid()}, "
                    "in the bridge host); one bridge per cloud",
                    f"leave it running, or stop it first: agent disconnect {plan.cloud}",
                )
            )
        output = None if self.log_dir is None else log_file_for(self.log_dir, plan.cloud)
        run = CloudRun(plan, pid_file_for(self.run_dir, plan.cloud), output)
        with self._lock:
            self.clouds[plan.cloud] = run
        error = run.start()
        if error is not None:
            return self._error(error)
        return control.ok_reply(pid=os.getpid(), cloud=plan.cloud)

    def stop(self, cloud: str) -> dict[str, Any]:
        with self._cloud_lock(cloud):
            with self._lock:
                withdrawn = self._retry.pop(cloud, None) is not None
            reply = self._stop(cloud)
            if withdrawn and not reply["ok"]:  # it was only waiting for a retry
                return control.ok_reply(pid=os.getpid(), cloud=cloud)
            return reply

    def retry_later(self, plan: BridgePlan) -> None:
        with self._lock:
            self._retry[plan.cloud] = plan

    def retrying(self) -> list[str]:
        with self._lock:
            return sorted(self._retry)

    def retry(self, cloud: str, never_retry: frozenset[int]) -> dict[str, Any] | None:
        """Start ``cloud`` again if it still waits for a retry (None: it does not);
        it keeps waiting when the start fails again for a reason that may pass."""
        with self._cloud_lock(cloud):
            with self._lock:
                plan = self._retry.pop(cloud, None)
            if plan is None:
                return None
            reply = self._start(plan)
            if not reply["ok"] and int(reply["exit_code"]) not in never_retry:
                self.retry_later(plan)
            return reply

    def _stop(self, cloud: str) -> dict[str, Any]:
        run = self.clouds.get(cloud)
        if run is None or not run.thread.is_alive():
            return self._error(ServiceError(f"the bridge host does not run {cloud}"))
        run.stop.set()
        run.thread.join(timeouts.CLOUD_STOP)
        if run.thread.is_alive():
            return self._error(
                ServiceError(
                    f"the {cloud} bridge did not stop within {timeouts.CLOUD_STOP:.0f} s",
                    f"see the {cloud} bridge's log",
                )
            )
        return control.ok_reply(pid=os.getpid(), cloud=cloud)

    def list(self) -> dict[str, Any]:
        return control.ok_reply(
            pid=os.getpid(),
            clouds={run.cloud: run.describe() for run in self._runs()},
            retrying=self.retrying(),
        )

    def stop_all(self) -> None:
        for run in self._runs():
            run.stop.set()
        deadline = time.monotonic() + timeouts.CLOUD_STOP
        for run in self._runs():
            if run.thread.ident is not None:
                run.thread.join(max(0.0, deadline - time.monotonic()))

    # -- the control socket -------------------------------------------------------------

    def serve(self, listener: socket.socket, stop: threading.Event) -> None:
        """Answer requests until ``stop`` is set or no cloud runs any more."""
        listener.settimeout(POLL)
        try:
            while not stop.is_set() and self._serving():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with self._lock:
                    self._in_flight += 1
                threading.Thread(
                    target=self._handle_and_close, args=(conn,), name="control", daemon=True
                ).start()
        finally:
            self.stop_all()

    def _serving(self) -> bool:
        """A cloud runs, or a request (maybe a start) is being answered."""
        with self._lock:
            busy = self._in_flight > 0 or bool(self._retry)
        return busy or any(run.thread.is_alive() for run in self._runs())

    def _handle_and_close(self, conn: socket.socket) -> None:
        try:
            with conn:
                self.handle(conn)
        finally:
            with self._lock:
                self._in_flight -= 1

    def handle(self, conn: socket.socket) -> None:
        """One request, one reply; nothing a peer sends ends the host."""
        try:
            pid, uid = control.peer_credentials(conn)
            stream = FrameStream(
                conn, idle_timeout=control.REQUEST_TIMEOUT, frame_timeout=control.REQUEST_TIMEOUT
            )
            if not control.trusted_uid(uid):
                log.warning(
                    "refused a control connection from pid %d of uid %d (only uid %d or root)",
                    pid,
                    uid,
                    os.getuid(),
                )
                # The answer says why, not only the log. Its request is read
                # first (and dropped, never parsed): closing a Unix socket with
                # unread data resets it, and the peer would get no answer.
                with contextlib.suppress(FrameError, TimeoutError, PeerClosed):
                    stream.read()
                self._send(stream, self._error(control.refusal(uid)))
                return
            try:
                body = stream.read()
            except (FrameError, TimeoutError) as error:
                log.warning("control request from pid %d: %s", pid, error)
                self._send(stream, self._error(ServiceError(f"bad control request: {error}")))
                return
            except PeerClosed:
                return
            self._send(stream, self.answer(body))
        except OSError as error:  # the peer went away: its loss
            log.warning("control connection: %s", error)
        except Exception:  # a bug in one request must not end every cloud
            log.exception("control request failed")

    def _send(self, stream: FrameStream, reply: dict[str, Any]) -> None:
        with contextlib.suppress(OSError, TimeoutError, FrameError):
            stream.write(json.dumps(reply).encode())

    def answer(self, body: bytes) -> dict[str, Any]:
        try:
            request = json.loads(body)
            op = request["op"]
            if op == "start":
                plan = BridgePlan.from_json(json.dumps(request["plan"]).encode())
                return self.start(plan)
            if op == "stop":
                return self.stop(str(request["cloud"]))
            if op == "list":
                return self.list()
            raise ValueError(f"unknown op {op!r}")
        except (ValueError, KeyError, TypeError) as error:
            # Never echo the request: a plan holds the PIN.
            return self._error(
                ServiceError(f"bad control request: {type(error).__name__}: {error}")
            )


@contextlib.contextmanager
def control_socket(run_dir: Path) -> Iterator[socket.socket]:
    """``run.path/bridge.sock``, mode 0600; the host's pid file lock makes a left-over one ours."""
    path = control.socket_path(run_dir)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # never, even for an instant, wider than 0600
    try:
        sock.bind(str(path))
    except OSError as error:
        sock.close()
        raise control.socket_problem(path, error) from None
    finally:
        os.umask(old_umask)
    try:
        sock.listen(16)
        yield sock
    finally:
        # Unlink first: a start that comes now finds no host and becomes the next one.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock.close()


def start_in_host(
    plan: BridgePlan,
    run_dir: Path,
    log_dir: Path | None,
    stop: threading.Event,
    exit_code_for: ExitCodeFor,
    report: Report,
    *,
    may_host: bool = True,
) -> int:
    """Start ``plan``'s cloud in the bridge host: ask the running one, or become it.

    ``report`` gets the start's reply (ok, or this start's error) as soon as
    it is known; the return value is the exit code: the host's when this
    process became the host and its last cloud stopped, else the reply's.
    ``may_host`` False (under systemd, where the unit is the host): only ask.
    Once this process is the host it logs to ``log_dir`` (None: stderr).
    """
    deadline = time.monotonic() + timeouts.JOIN
    while True:
        try:
            reply = control.request(
                run_dir, {"op": "start", "plan": json.loads(plan.to_json())}, timeouts.CONTROL_START
            )
        except control.ControlUnavailable:
            pass
        except ServiceError:
            # No answer in time: this command reports a failure, so the host
            # must not go on to start the cloud after all.
            _withdraw(run_dir, plan.cloud)
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
                f"no bridge host answers on {control.socket_path(run_dir)}",
                "see the bridge host's log (logs.path/bridge-host.log, or the journal)",
            )
        time.sleep(0.05)


def _withdraw(run_dir: Path, cloud: str) -> None:
    """Ask the host to stop ``cloud`` whose start this command gave up on (best effort)."""
    try:
        control.request(run_dir, {"op": "stop", "cloud": cloud}, timeouts.CONTROL_STOP)
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
    none starts, the exit code is the first failure's, so systemd restarts
    the host or not (RestartPreventExitStatus=).
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

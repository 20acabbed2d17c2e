"""One process serving every connected cloud: a thread per cloud, a control socket.

    host = BridgeHost(run_dir, log_dir, exit_code_for)
    reply = host.start(plan)            # a CloudRun (cloud_run.py) for plan's cloud
    with control_socket(run_dir) as listener:
        host.serve(listener, stop)      # start / stop / list requests (control.py)

How a process becomes the host, or hands a plan to the running one:
host_start.py.

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
from pathlib import Path
from typing import Any

from edgeagent.bridge import control, timeouts
from edgeagent.bridge.cloud_run import CloudRun
from edgeagent.bridge.holder import pid_file_for
from edgeagent.bridge.logs import log_file_for
from edgeagent.bridge.plan import BridgePlan
from edgeagent.errors import AgentError, BridgeAlreadyRunning, ServiceError
from edgeagent.protocol.frame import FrameError, FrameStream, PeerClosed

log = logging.getLogger("edgeagent.bridge")


ExitCodeFor = Callable[[AgentError], int]


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
        """Guards ``clouds``, ``_cloud_locks``, ``_in_flight``, ``_retry``, ``_closing``
        and ``_withdrawn``."""
        self._cloud_locks: dict[str, threading.Lock] = {}
        self._in_flight = 0
        self._retry: dict[str, BridgePlan] = {}
        """Clouds whose start failed for a reason that may pass (serve_in_foreground)."""
        self._closing = False
        """Set by stop_all: no cloud starts any more."""
        self._withdrawn: set[str] = set()
        """Clouds a stop request ended (their end is no failure of the host)."""

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
        with self._lock:  # this start replaces a pending retry
            self._retry.pop(plan.cloud, None)
            self._withdrawn.discard(plan.cloud)
        with self._cloud_lock(plan.cloud):
            return self._start(plan)

    def restart(self, plan: BridgePlan) -> dict[str, Any]:
        """Stop ``plan``'s cloud if it runs, then start it with ``plan``, under one
        lock: `agent reconnect` (and a certificate renewal) never leaves the host
        with no cloud, so it never exits in between (N3)."""
        with self._lock:
            self._retry.pop(plan.cloud, None)
            self._withdrawn.discard(plan.cloud)
        with self._cloud_lock(plan.cloud):
            run = self.clouds.get(plan.cloud)
            if run is not None and run.thread.is_alive():
                reply = self._stop(plan.cloud)
                if not reply["ok"]:
                    return reply
            return self._start(plan)

    def _start(self, plan: BridgePlan) -> dict[str, Any]:
        current = self.clouds.get(plan.cloud)
        if current is not None and current.thread.is_alive() and not current.running:
            # An abandoned start (a stuck token) or a stop still finishing: it
            # never runs its bridge; wait for it, else this try fails for a
            # reason that passes (retried), never "already running" (N1).
            current.stop.set()
            current.thread.join(timeouts.CLOUD_STOP)
            if current.thread.is_alive():
                return self._error(
                    ServiceError(
                        f"the previous start of the {plan.cloud} bridge is still stuck "
                        "opening the key (or the token)",
                        f"see the {plan.cloud} bridge's log; it is tried again",
                    )
                )
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
            # Registered and started at once, never after stop_all's snapshot (N6).
            if self._closing:
                return self._error(ServiceError("the bridge host is stopping"))
            self.clouds[plan.cloud] = run
            run.thread.start()
        error = run.wait_started()
        if error is not None:
            return self._error(error)
        return control.ok_reply(pid=os.getpid(), cloud=plan.cloud)

    def stop(self, cloud: str) -> dict[str, Any]:
        # Before the cloud lock: a retry waiting is withdrawn at once, and a
        # start in progress (a control request, a retry) stops as soon as its
        # key is open instead of running its bridge (N4).
        with self._lock:
            withdrawn = self._retry.pop(cloud, None) is not None
            self._withdrawn.add(cloud)
            pending = self.clouds.get(cloud)
        if pending is not None:
            pending.stop.set()
        with self._cloud_lock(cloud):
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
        it keeps waiting when the start fails again for a reason that may pass.

        The cloud stays in the retry list until the attempt's outcome is known,
        so the host never sees "nothing to serve" in between (N5).
        """
        with self._cloud_lock(cloud):
            with self._lock:
                plan = self._retry.get(cloud)
            if plan is None:
                return None
            reply = self._start(plan)
            with self._lock:
                if self._retry.get(cloud) is plan and (
                    reply["ok"] or int(reply["exit_code"]) in never_retry
                ):
                    del self._retry[cloud]
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

    def failure(self) -> AgentError | None:
        """The error of a cloud that ran, then ended without a stop request: the
        host's exit code comes from it, so systemd restarts the host (N1). A
        start that failed was logged then, and retried if that may help."""
        with self._lock:
            runs = [run for run in self.clouds.values() if run.cloud not in self._withdrawn]
        for run in runs:
            if run.ran and run.error is not None and not run.thread.is_alive():
                return run.error
        return None

    def list(self) -> dict[str, Any]:
        return control.ok_reply(
            pid=os.getpid(),
            clouds={run.cloud: run.describe() for run in self._runs()},
            retrying=self.retrying(),
        )

    def stop_all(self) -> None:
        """Stop every cloud, and refuse new starts: a start in progress (a
        control request, a retry) is stopped too, and waited for, so no
        cloud's thread is left running while the process exits (N6)."""
        with self._lock:
            self._closing = True
            runs = list(self.clouds.values())
        for run in runs:
            run.stop.set()
        # A start still opening the key gets its whole CLOUD_START.
        deadline = time.monotonic() + timeouts.START_HELD
        for run in runs:
            run.thread.join(max(0.0, deadline - time.monotonic()))

    # -- the control socket -------------------------------------------------------------

    def serve(self, listener: socket.socket, stop: threading.Event) -> None:
        """Answer requests until ``stop`` is set or no cloud runs any more."""
        listener.settimeout(timeouts.POLL)
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
            if op == "restart":
                plan = BridgePlan.from_json(json.dumps(request["plan"]).encode())
                return self.restart(plan)
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

"""The bridge host's control loop: requests answered side by side, a start nobody waits for.

Real sockets and threads; the clouds are stand-ins (no token, no broker).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from edgeagent import errors
from edgeagent.bridge import control, host_start
from edgeagent.bridge.cloud_run import CloudRun
from edgeagent.bridge.host import BridgeHost, control_socket
from edgeagent.bridge.plan import BridgePlan
from edgeagent.cli.exit_codes import NEVER_RETRY, exit_code_for
from edgeagent.errors import AgentError
from edgeagent.protocol.frame import FrameStream


class SlowHost(BridgeHost):
    """Answers {"op": "slow"} after ``release`` is set, as a start on a slow token does."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, None, exit_code_for)
        self.entered = threading.Event()
        self.release = threading.Event()

    def answer(self, body: bytes) -> dict[str, Any]:
        if json.loads(body)["op"] == "slow":
            self.entered.set()
            self.release.wait(10)
            return control.ok_reply(pid=0)
        return super().answer(body)


def _stand_in_cloud(run_dir: Path, cloud: str) -> CloudRun:
    """A running cloud whose thread only waits for its stop."""
    run = CloudRun(cast(BridgePlan, SimpleNamespace(cloud=cloud)), run_dir / "x.pid", None)
    run.thread = threading.Thread(target=run.stop.wait, daemon=True)
    run.thread.start()
    return run


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[SlowHost]:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    bridge_host = SlowHost(run_dir)
    bridge_host.clouds["c8y"] = _stand_in_cloud(run_dir, "c8y")
    stop = threading.Event()
    with control_socket(run_dir) as listener:
        server = threading.Thread(target=bridge_host.serve, args=(listener, stop), daemon=True)
        server.start()
        yield bridge_host
        bridge_host.release.set()
        stop.set()
        server.join(10)


def test_a_request_is_answered_while_another_cloud_s_start_is_slow(serving: SlowHost) -> None:
    """M1: one thread per connection; no request waits in a queue behind another."""
    run_dir = serving.run_dir
    slow = threading.Thread(target=control.request, args=(run_dir, {"op": "slow"}, 15))
    slow.start()
    try:
        assert serving.entered.wait(10)
        listing = control.request(run_dir, {"op": "list"}, 15)
        assert listing["ok"] and "c8y" in listing["clouds"]
        assert slow.is_alive(), "list was answered only after the slow request"
    finally:
        serving.release.set()
        slow.join(10)


def test_the_timeouts_nest(monkeypatch: pytest.MonkeyPatch) -> None:
    """M1/L9: every waiter waits longer than what it waits for."""
    from edgeagent.bridge import timeouts

    # N4: a request may first wait for the cloud's lock, held by a start
    # (which may wait CLOUD_STOP for an abandoned start, then CLOUD_START).
    held = timeouts.CLOUD_STOP + timeouts.CLOUD_START
    assert held <= timeouts.START_HELD
    assert timeouts.START_HELD + timeouts.CLOUD_STOP < timeouts.CONTROL_STOP
    # A restart (N3): the lock, the running bridge's stop, then the start.
    assert timeouts.START_HELD + timeouts.CLOUD_STOP + held < timeouts.CONTROL_START
    # N7: the child may withdraw after its own wait, before the caller gives up.
    assert timeouts.JOIN + timeouts.CONTROL_START + timeouts.CONTROL_STOP < timeouts.RUN_START


def test_a_host_whose_starter_gave_up_serves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M1 C: the reply's pipe is closed (the caller timed out): the host and its cloud live on."""
    served: list[str] = []
    monkeypatch.setattr(
        BridgeHost, "start", lambda self, plan: control.ok_reply(pid=0, cloud=plan.cloud)
    )
    monkeypatch.setattr(BridgeHost, "serve", lambda self, listener, stop: served.append("yes"))

    def report(reply: dict[str, Any]) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    plan = cast(BridgePlan, SimpleNamespace(cloud="c8y"))
    code = host_start._be_host(plan, run_dir, None, threading.Event(), exit_code_for, report)
    assert (code, served) == (0, ["yes"])


def _failing_then_ok(failures: list[AgentError]) -> Any:
    """A BridgeHost._start that fails with ``failures`` in turn, then starts."""

    def start(self: BridgeHost, plan: BridgePlan) -> dict[str, Any]:
        if failures:
            error = failures.pop(0)
            return control.error_reply(error, exit_code_for(error))
        return control.ok_reply(pid=0, cloud=plan.cloud)

    return start


def test_a_cloud_whose_start_may_pass_is_retried_until_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M5: the signing service was restarting at boot while another cloud ran."""
    unreachable = errors.SignerUnreachable("no signing service", "start it")
    monkeypatch.setattr(BridgeHost, "_start", _failing_then_ok([unreachable, unreachable]))
    monkeypatch.setattr("edgeagent.bridge.timeouts.RETRY_FIRST", 0.01)
    bridge_host = BridgeHost(tmp_path, None, exit_code_for)
    bridge_host.retry_later(cast(BridgePlan, SimpleNamespace(cloud="c8y")))
    stop = threading.Event()
    retries = threading.Thread(
        target=host_start._retry_failed, args=(bridge_host, stop, NEVER_RETRY)
    )
    retries.start()
    retries.join(10)
    stop.set()
    assert not retries.is_alive() and bridge_host.retrying() == []


def test_a_wrong_pin_is_never_retried_and_disconnect_withdraws_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M5: a wrong PIN retried locks the token; a disconnected cloud stays stopped."""
    wrong_pin = errors.PinIncorrect("PIN incorrect", "check the PIN")
    monkeypatch.setattr(BridgeHost, "_start", _failing_then_ok([wrong_pin]))
    bridge_host = BridgeHost(tmp_path, None, exit_code_for)
    bridge_host.retry_later(cast(BridgePlan, SimpleNamespace(cloud="c8y")))
    reply = bridge_host.retry("c8y", NEVER_RETRY)
    assert reply is not None and reply["error"] == "PinIncorrect"
    assert bridge_host.retrying() == []

    bridge_host.retry_later(cast(BridgePlan, SimpleNamespace(cloud="az")))
    assert bridge_host.stop("az")["ok"]
    assert bridge_host.retrying() == [] and bridge_host.retry("az", NEVER_RETRY) is None


def test_a_refused_peer_is_told_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """L2: a silent close read as "host exiting", and 10 s later "no bridge host answers"."""
    monkeypatch.setattr(control, "trusted_uid", lambda uid: False)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        peer = FrameStream(theirs, idle_timeout=5, frame_timeout=5)
        peer.write(b'{"op": "list"}')
        BridgeHost(tmp_path, None, exit_code_for).handle(ours)
        ours.close()
        reply = json.loads(peer.read())
    assert reply["ok"] is False
    assert reply["message"] == f"uid {os.getuid()} may not use the bridge host"
    assert isinstance(control.error_of(reply), errors.ServiceError)


def test_a_run_dir_too_long_for_a_unix_socket_is_named_with_its_fix(tmp_path: Path) -> None:
    """L2: `agent connect` printed "the bridge could not start: Traceback…"."""
    run_dir = tmp_path / ("r" * 120)
    run_dir.mkdir()
    with pytest.raises(errors.ServiceError) as caught:
        control.request(run_dir, {"op": "list"}, 5)
    assert "at most 107" in caught.value.cause and "run.path" in caught.value.fix
    with pytest.raises(errors.ServiceError, match="at most 107"), control_socket(run_dir):
        pass


def test_a_connect_replaces_a_pending_retry_and_list_names_the_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M5: the host keeps running for a cloud it will retry (stop's wait must know)."""
    monkeypatch.setattr(BridgeHost, "_start", _failing_then_ok([]))
    bridge_host = BridgeHost(tmp_path, None, exit_code_for)
    plan = cast(BridgePlan, SimpleNamespace(cloud="c8y"))
    bridge_host.retry_later(plan)
    assert bridge_host.list()["retrying"] == ["c8y"]
    assert bridge_host.start(plan)["ok"]
    assert bridge_host.retrying() == [] and bridge_host.list()["retrying"] == []


class _Prepared:
    """A stand-in PreparedBridge: ``run`` records whether its stop was set already."""

    def __init__(self, fail: AgentError | None = None) -> None:
        self.fail = fail
        self.stopped_before_run: bool | None = None

    def run(self, stop: threading.Event) -> None:
        self.stopped_before_run = stop.is_set()
        if self.fail is not None:
            raise self.fail
        stop.wait(10)

    def close(self) -> None:
        pass


class _Token:
    """A stand-in ``prepare``: the first ``stuck`` calls hang until ``release``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stuck: int = 0) -> None:
        self.stuck = stuck
        self.entered = threading.Event()
        self.release = threading.Event()
        self.prepared: list[_Prepared] = []
        self.fail: AgentError | None = None
        monkeypatch.setattr("edgeagent.bridge.cloud_run.prepare", self.prepare)

    def prepare(self, plan: Any, output: Any) -> _Prepared:
        if self.stuck > 0:
            self.stuck -= 1
            self.entered.set()
            assert self.release.wait(10)
        prepared = _Prepared(self.fail)
        self.prepared.append(prepared)
        return prepared


def _host_with_run_dir(tmp_path: Path) -> BridgeHost:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    return BridgeHost(run_dir, None, exit_code_for)


def test_a_start_that_timed_out_is_retried_and_never_counts_as_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N1: the stuck thread counted as running; its retry got 81 and was dropped."""
    token = _Token(monkeypatch, stuck=1)
    monkeypatch.setattr("edgeagent.bridge.timeouts.CLOUD_START", 0.3)
    monkeypatch.setattr("edgeagent.bridge.timeouts.CLOUD_STOP", 0.2)
    bridge_host = _host_with_run_dir(tmp_path)
    plan = cast(BridgePlan, SimpleNamespace(cloud="c8y"))
    reply = bridge_host.start(plan)
    assert reply["exit_code"] == exit_code_for(errors.ServiceError("x"))
    assert bridge_host.running == []  # serve_in_foreground: exit non-zero, systemd restarts
    assert not bridge_host.list()["clouds"]["c8y"]["running"]

    bridge_host.retry_later(plan)
    reply = bridge_host.retry("c8y", NEVER_RETRY)  # the old thread is still stuck
    assert reply is not None and reply["error"] == "ServiceError", reply
    assert bridge_host.retrying() == ["c8y"]

    token.release.set()  # the token answers at last: the abandoned start ends
    reply = bridge_host.retry("c8y", NEVER_RETRY)
    assert reply is not None and reply["ok"], reply
    assert bridge_host.running == ["c8y"] and bridge_host.retrying() == []
    assert token.prepared[0].stopped_before_run, "the abandoned start ran its bridge"
    bridge_host.stop_all()


def test_a_host_whose_last_cloud_ends_on_its_own_exits_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N1: a cloud that ended with an error nobody asked for made the host exit 0."""
    token = _Token(monkeypatch)
    token.fail = errors.SignerUnreachable("the signing service went away", "start it")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    plan = cast(BridgePlan, SimpleNamespace(cloud="c8y"))
    code = host_start.serve_in_foreground(
        [plan], run_dir, threading.Event(), exit_code_for, NEVER_RETRY
    )
    assert code == exit_code_for(token.fail)


def test_a_retry_stays_listed_while_its_attempt_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N5: between the pop and the new thread the host saw nothing to serve, exited 0."""
    seen: list[list[str]] = []
    bridge_host = BridgeHost(tmp_path, None, exit_code_for)
    unreachable = errors.SignerUnreachable("no signing service", "start it")

    def start(self: BridgeHost, plan: BridgePlan) -> dict[str, Any]:
        seen.append(self.retrying())
        return control.error_reply(unreachable, exit_code_for(unreachable))

    monkeypatch.setattr(BridgeHost, "_start", start)
    bridge_host.retry_later(cast(BridgePlan, SimpleNamespace(cloud="c8y")))
    bridge_host.retry("c8y", NEVER_RETRY)
    assert seen == [["c8y"]] and bridge_host.retrying() == ["c8y"]


def test_a_stop_interrupts_a_start_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N4: the stop waited on the cloud's lock behind the whole start, past its client."""
    token = _Token(monkeypatch, stuck=1)
    bridge_host = _host_with_run_dir(tmp_path)
    plan = cast(BridgePlan, SimpleNamespace(cloud="c8y"))
    starting = threading.Thread(target=bridge_host.start, args=(plan,))
    starting.start()
    assert token.entered.wait(10)
    stopping = threading.Thread(target=bridge_host.stop, args=("c8y",))
    stopping.start()
    try:
        run = bridge_host.clouds["c8y"]
        assert run.stop.wait(5), "the stop waited for the start to finish first"
    finally:
        token.release.set()
        starting.join(10)
        stopping.join(10)
    assert token.prepared[0].stopped_before_run
    assert bridge_host.running == []


def test_restart_replaces_the_cloud_and_the_host_serves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N3: reconnect stopped the host's last cloud first, and the host exited."""
    token = _Token(monkeypatch)
    bridge_host = _host_with_run_dir(tmp_path)
    plan = cast(BridgePlan, SimpleNamespace(cloud="c8y"))
    assert bridge_host.start(plan)["ok"]
    old = bridge_host.clouds["c8y"]
    stop = threading.Event()
    with control_socket(bridge_host.run_dir) as listener:
        server = threading.Thread(target=bridge_host.serve, args=(listener, stop), daemon=True)
        server.start()
        try:
            monkeypatch.setattr(BridgePlan, "from_json", staticmethod(lambda raw: plan))
            reply = control.request(
                bridge_host.run_dir, {"op": "restart", "plan": {"cloud": "c8y"}}, 15
            )
            assert reply["ok"], reply
            assert not old.thread.is_alive() and bridge_host.clouds["c8y"] is not old
            assert bridge_host.running == ["c8y"] and server.is_alive()
            assert len(token.prepared) == 2
        finally:
            stop.set()
            server.join(10)


def test_after_stop_all_no_cloud_starts_and_a_start_in_progress_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N6: a start during SIGTERM escaped stop_all and died with the process."""
    token = _Token(monkeypatch, stuck=1)
    bridge_host = _host_with_run_dir(tmp_path)
    plan = cast(BridgePlan, SimpleNamespace(cloud="c8y"))
    starting = threading.Thread(target=bridge_host.start, args=(plan,))
    starting.start()
    assert token.entered.wait(10)
    threading.Timer(0.3, token.release.set).start()
    bridge_host.stop_all()  # SIGTERM while c8y opens its key
    run = bridge_host.clouds["c8y"]
    assert not run.thread.is_alive() and token.prepared[0].stopped_before_run
    starting.join(10)

    reply = bridge_host.start(cast(BridgePlan, SimpleNamespace(cloud="az")))
    assert not reply["ok"] and "stopping" in reply["message"]
    assert "az" not in bridge_host.clouds and len(token.prepared) == 1


def test_a_host_that_does_not_answer_in_time_is_named_with_where_it_logs(tmp_path: Path) -> None:
    """L3: under systemd the fix still said logs.path/bridge-host.log."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    journal = "journalctl -u agent-bridge.service"
    with control_socket(run_dir), pytest.raises(control.ControlTimeout) as caught:
        control.request(run_dir, {"op": "list"}, 0.3, journal)  # never accepted
    assert caught.value.fix == f"see {journal}"
    assert host_start._host_log_hint(None).endswith(f"({journal})")
    assert host_start._host_log_hint(tmp_path) == str(tmp_path / "bridge-host.log")

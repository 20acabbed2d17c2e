"""The signing service under connection abuse from a second local user (`nobody`).

The abuser is a child process under `nobody` (setpriv, the system Python) that
opens 100 connections to the real service and either floods it with hellos
(reconnecting as soon as one is closed) or holds them idle without a word.
Meanwhile our own user, the legitimate client, says hello 8 times: every one
must be served, none told `busy`. Each abuse is bounded: 100 connections, a
few seconds.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from edgeagent import errors
from edgeagent.p11server.server import HELLO_TIMEOUT, MAX_CLIENTS_PER_UID
from edgeagent.signing.service_connection import ServiceConnection
from tests.support.raw_client import NOBODY, SYSTEM_PYTHON
from tests.support.signing_service import P11Server, P11ServerFactory
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration

CONNECTIONS = 100
LEGITIMATE_HELLOS = 8

# Standard library only: it runs under `nobody`, who cannot read the test venv.
_ABUSER = """
import json, select, socket, struct, sys, time
path, mode, count, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
body = json.dumps({"op": "hello", "versions": [1]}).encode()
frame = struct.pack(">I", len(body)) + body

def open_one():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    for _ in range(500):  # the listen backlog is short: wait for the server to accept
        try:
            s.connect(path)
            break
        except BlockingIOError:
            time.sleep(0.01)
    else:
        raise TimeoutError("the server accepted nothing for 5 s")
    if mode == "flood":
        try:
            s.sendall(frame)
        except OSError:
            pass
    s.setblocking(False)
    return s

conns = [open_one() for _ in range(count)]
print("ready", flush=True)
opened, closed = count, 0
deadline = time.monotonic() + hold
while time.monotonic() < deadline:
    readable, _, _ = select.select(conns, [], [], 0.05)
    for s in readable:
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if data:
            continue
        closed += 1
        conns.remove(s)
        s.close()
        if mode == "flood":
            try:
                conns.append(open_one())
                opened += 1
            except OSError:
                pass
print(json.dumps({"opened": opened, "closed_by_server": closed, "open": len(conns)}), flush=True)
"""


def _abuse(path: Path, mode: str, hold: float) -> subprocess.Popen[str]:
    """Start the abuser as nobody; returns once its connections are open."""
    abuser = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            SYSTEM_PYTHON,
            "-I",
            "-c",
            _ABUSER,
            str(path),
            mode,
            str(CONNECTIONS),
            str(hold),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert abuser.stdout is not None
    ready = abuser.stdout.readline().strip()
    if ready != "ready":
        abuser.kill()
        _, err = abuser.communicate(timeout=10)
        pytest.fail(f"the abuser did not start: {ready!r} {err}")
    return abuser


def _outcome(abuser: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = abuser.communicate(timeout=60)
    assert abuser.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _legitimate_hellos(path: Path) -> list[str]:
    """Our own user's hellos (and a ping), one connection each, through the agent's own
    client (which waits out a full listen queue): "ok" or why not."""
    answers = []
    for _ in range(LEGITIMATE_HELLOS):
        conn = ServiceConnection(path, timeout=10)
        try:
            conn.request({"op": "ping"})
            answers.append("ok")
        except errors.AgentError as error:
            answers.append(error.cause)
        finally:
            conn.close()
    return answers


@pytest.fixture
def service(p11_server_factory: P11ServerFactory, softhsm_token: SoftHsmToken) -> P11Server:
    key = softhsm_token.generate_key("ec-p256", label="served")
    return p11_server_factory(softhsm_token, key)


def test_a_refused_user_flooding_takes_no_slot_and_a_few_log_lines(service: P11Server) -> None:
    service.start()
    service.socket_path.chmod(0o666)  # a careless chmod: only the peer check protects it
    abuser = _abuse(service.socket_path, "flood", hold=4.0)
    try:
        answers = _legitimate_hellos(service.socket_path)
    finally:
        outcome = _outcome(abuser)
    assert answers == ["ok"] * LEGITIMATE_HELLOS, outcome
    assert outcome["opened"] > CONNECTIONS  # it did flood: refused and back again
    refusal_lines = [
        line for line in service.log_text().splitlines() if f"refused peer uid={NOBODY}" in line
    ]
    # One line per uid per interval (60 s), however many refusals it stands for.
    assert len(refusal_lines) == 1, refusal_lines[:5]


def test_an_allowed_user_holding_idle_connections_starves_nobody(service: P11Server) -> None:
    service.start("--allow-users", str(NOBODY))
    service.socket_path.chmod(0o666)
    hold = HELLO_TIMEOUT + 3
    started = time.monotonic()
    abuser = _abuse(service.socket_path, "idle", hold=hold)
    try:
        answers = _legitimate_hellos(service.socket_path)
    finally:
        outcome = _outcome(abuser)
    assert answers == ["ok"] * LEGITIMATE_HELLOS, outcome
    assert time.monotonic() - started < hold + 30
    # Those over the per-uid limit were told busy and closed at once; the
    # MAX_CLIENTS_PER_UID it was given were closed for saying no hello in time.
    assert outcome["closed_by_server"] == CONNECTIONS, outcome
    busy_lines = [line for line in service.log_text().splitlines() if "already holds" in line]
    assert len(busy_lines) == 1, busy_lines[:5]
    assert f"holds {MAX_CLIENTS_PER_UID} connections" in busy_lines[0]

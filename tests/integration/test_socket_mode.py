"""Socket mode end to end: `agent p11-server` owns a real SoftHSM2 token, the
agent signs through its Unix socket and never loads the PKCS#11 module.

The service is started as a user would: the real `agent p11-server` command
with its own config dir (module path, PIN, key URI) and a socket in a private
directory. The agent's config has neither a module path nor a PIN.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from edgeagent import errors
from edgeagent.cli.exit_codes import exit_code_for
from edgeagent.p11server.server import FRAME_TIMEOUT
from edgeagent.protocol.frame import MAX_FRAME
from edgeagent.signing.socket_signer import SocketSigner
from tests.support.agent_cli import AGENT
from tests.support.gateway import Gateway, GatewayFactory, issue_device_cert
from tests.support.mosquitto import Mosquitto
from tests.support.raw_client import (
    NOBODY,
    connect_raw,
    ping,
    raw_ask,
    read_reply,
    replies_as,
    run_as,
)
from tests.support.signing_service import P11Server, P11ServerFactory
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsm, SoftHsmKey, SoftHsmToken

pytestmark = pytest.mark.integration

PING = {"op": "ping"}

# -- the signing service as a user starts it (tests/support/signing_service.py) ----------


@pytest.fixture
def device_key(softhsm_token: SoftHsmToken) -> SoftHsmKey:
    return softhsm_token.generate_key("ec-p256", label="device-key")


@pytest.fixture
def service_factory(
    p11_server_factory: P11ServerFactory, softhsm_token: SoftHsmToken, device_key: SoftHsmKey
) -> Any:
    """Make (not start) signing services for the test token and its device key."""
    return partial(p11_server_factory, softhsm_token, device_key)


@pytest.fixture
def service(service_factory: Any) -> P11Server:
    server: P11Server = service_factory().start()
    return server


@pytest.fixture
def gateway(service: P11Server, gateway_factory: GatewayFactory, device_key: SoftHsmKey) -> Gateway:
    """An agent in socket mode: a socket path and a certificate, nothing else."""
    gw = gateway_factory("socket", socket_path=service.socket_path)
    gw.set("device.cert_path", str(issue_device_cert(gw, device_key)))
    return gw


def maps_of(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


# -- the agent connects through the service ---------------------------------------------


def test_connect_c8y_bridges_both_ways_signing_through_the_service(
    gateway: Gateway, service: P11Server
) -> None:
    agent_toml = (gateway.config_dir / "agent.toml").read_text()
    # Keys, not substrings: a temp path may well contain "pin".
    assert not re.search(r"^\s*(module_path|pin|key_pin)\s*=", agent_toml, re.M), agent_toml

    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"key access: socket (signing service at {service.socket_path})" in done.stdout
    assert "object=device-key" in done.stdout
    assert f"via the signing service at {service.socket_path}" in done.stdout
    assert "device id: device-001" in done.stdout

    up, down = gateway.exchange(b"200,c8y_Temperature,T,25", b"510,device-001")
    assert up.payload == b"200,c8y_Temperature,T,25"
    assert down.payload == b"510,device-001"

    # The long-running bridge never loaded the module; the service did. (The
    # second assertion shows the first one can fail.)
    assert "libsofthsm2" not in maps_of(gateway.bridge_pid())
    assert "libsofthsm2" in maps_of(service.pid)
    # The bridge's handshake was signed by the service, for the bridge's pid.
    assert f"pid={gateway.bridge_pid()}" in service.log_text()


def test_the_running_service_is_lean_and_its_pin_is_in_no_argv_or_environment(
    service: P11Server, softhsm_token: SoftHsmToken, device_key: SoftHsmKey
) -> None:
    pid = service.pid  # `agent p11-server` exec'd into the runtime: the same process
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"edgeagent.cli.p11_server_runtime" in cmdline.split(b"\0")
    maps = maps_of(pid)
    assert "libsofthsm2" in maps  # the token is here...
    assert "_pydantic_core" not in maps  # ...the configuration layer is not (~10 MB)
    pin = softhsm_token.pin.encode()
    assert pin not in cmdline
    assert pin not in Path(f"/proc/{pid}/environ").read_bytes()
    signer = SocketSigner(service.socket_path, None)
    assert signer.public_key() == device_key.public_key  # and it serves
    signer.close()


def test_code_in_the_current_directory_never_runs_in_the_service(
    service_factory: Any, tmp_path: Path
) -> None:
    """`python -m` puts the current directory first on sys.path; the runtime runs with -P."""
    planted = tmp_path / "planted"
    (planted / "edgeagent").mkdir(parents=True)
    marker = tmp_path / "planted-code-ran"
    (planted / "edgeagent" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise SystemExit(99)\n"
    )
    service: P11Server = service_factory().start(cwd=planted)
    signer = SocketSigner(service.socket_path, None)
    assert len(signer.sign_digest(bytes(32), "sha256", "ecdsa")) > 64
    signer.close()
    assert not marker.exists()


def test_service_down_fails_connect_naming_the_socket(gateway: Gateway, socket_dir: Path) -> None:
    missing = socket_dir / "nothing-here.sock"
    gateway.set("device.cryptoki.socket_path", str(missing))
    done = gateway.agent("connect", "c8y")
    assert done.returncode == exit_code_for(errors.SignerUnreachable("x")) == 70, done.stderr
    assert str(missing) in done.stderr
    assert "agent p11-server" in done.stderr

    # A socket file nobody listens on (a crashed service): connection refused.
    dead = socket_dir / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as leftover:
        leftover.bind(str(dead))
    gateway.set("device.cryptoki.socket_path", str(dead))
    done = gateway.agent("connect", "c8y")
    assert done.returncode == 70, done.stderr
    assert f"{dead} is not running" in done.stderr


def test_wrong_pin_in_the_service_reaches_the_agent_as_pin_incorrect(
    service_factory: Any, gateway: Gateway
) -> None:
    wrong = service_factory("wrong-pin", "wrong.sock")
    wrong.set("device.cryptoki.pin", "000000")
    wrong.start()
    gateway.set("device.cryptoki.socket_path", str(wrong.socket_path))

    for _ in range(2):
        done = gateway.agent("connect", "c8y")
        assert done.returncode == exit_code_for(errors.PinIncorrect("x")), done.stderr
        assert "PIN" in done.stderr
        assert "000000" not in done.stdout + done.stderr
    # Refused once at start; both requests were answered from memory, not retried.
    assert wrong.log_text().count("requests will be refused until the service restarts") == 1


def test_a_wrong_pin_from_the_environment_is_named_in_the_services_log(
    service_factory: Any,
) -> None:
    # Environment beats agent.toml: the variable is what to fix (issue 12 part 8).
    wrong = service_factory("env-pin", "env.sock")
    wrong.start(env={"AGENT_DEVICE_CRYPTOKI_PIN": "000000"})
    log = wrong.log_text()
    assert "requests will be refused until the service restarts" in log
    assert "check AGENT_DEVICE_CRYPTOKI_PIN (environment, device.cryptoki.pin)" in log
    assert "000000" not in log


def test_bridge_survives_a_service_restart(
    gateway: Gateway, service: P11Server, cloud_broker: Mosquitto
) -> None:
    assert gateway.agent("connect", "c8y").returncode == 0
    bridge_pid = gateway.bridge_pid()

    service.stop()
    service.start()
    assert f"pid={bridge_pid}" not in service.log_text()
    cloud_broker.restart()  # the bridge must handshake again: a new signature

    with gateway.cloud_app() as cloud, gateway.local_client() as local:
        cloud.subscribe("s/us", qos=1)
        local.publish("c8y/s/us", b"after the restart", qos=1)
        [up] = cloud.wait_for(1, "s/us", timeout=60)
        assert up.payload == b"after the restart"

    assert gateway.bridge_pid() == bridge_pid
    assert f"pid={bridge_pid}" in service.log_text()
    assert "libsofthsm2" not in maps_of(bridge_pid)


# -- who may ask ------------------------------------------------------------------------


def test_a_peer_not_allowed_is_refused_even_through_a_careless_chmod(
    service: P11Server,
) -> None:
    assert service.socket_path.stat().st_mode & 0o777 == 0o660
    service.socket_path.chmod(0o666)  # the file mode no longer protects it

    [refusal] = replies_as(service.socket_path, NOBODY, NOBODY, PING)

    assert refusal is not None and refusal["ok"] is False
    assert refusal["error"]["code"] == "not_allowed"
    assert "p11_server.allowed_users" in refusal["error"]["fix"]
    assert f"refused peer uid={NOBODY}" in service.log_text()
    ping(service.socket_path)  # our own user is still served


def test_allowed_users_and_groups_are_served(service_factory: Any) -> None:
    by_user = service_factory("by-user", "u.sock").start("--allow-users", str(NOBODY))
    by_user.socket_path.chmod(0o666)
    hello, pong = replies_as(by_user.socket_path, NOBODY, NOBODY, PING)
    assert hello is not None and hello["ok"] is True and pong == {"ok": True}

    by_group = service_factory("by-group", "g.sock").start("--allow-groups", "nogroup")
    by_group.socket_path.chmod(0o666)
    hello, pong = replies_as(by_group.socket_path, 4242, NOBODY, PING)  # nogroup is 65534
    assert hello is not None and hello["ok"] is True and pong == {"ok": True}
    [refusal] = replies_as(by_group.socket_path, 4242, 4242, PING)
    assert refusal is not None and refusal["error"]["code"] == "not_allowed"
    assert "refused peer uid=4242 gid=4242" in by_group.log_text()


# -- hostile or broken clients -------------------------------------------------------------


def test_malformed_input_never_takes_the_service_down(service: P11Server) -> None:
    path = service.socket_path

    # A client that sends half a header and stalls holds only its own connection,
    # and only for FRAME_TIMEOUT.
    staller = connect_raw(path, timeout=FRAME_TIMEOUT + 5)
    staller.sendall(b"\x00\x00")
    stalled_at = time.monotonic()
    assert ping(path) < 1

    for attack in (
        b"\xff\xff\xff\xff",  # announces 4 GiB
        struct.pack(">I", MAX_FRAME + 1),
        b"\x00\x00\x00\x00",  # an empty frame
    ):
        with connect_raw(path) as conn:
            conn.sendall(attack)
            reply = read_reply(conn)
            assert reply["error"]["code"] == "bad_request"
            assert conn.recv(1) == b""  # and the connection is closed
        assert ping(path) < 1

    with connect_raw(path) as conn:  # truncated: a header for 100 bytes, then 10 and EOF
        conn.sendall(struct.pack(">I", 100) + b"0123456789")
        conn.shutdown(socket.SHUT_WR)
        assert read_reply(conn)["error"]["code"] == "bad_request"
        assert conn.recv(1) == b""
    assert ping(path) < 1

    with connect_raw(path) as conn:  # garbage JSON in a well-formed frame: answered
        for garbage in (b"\x00\xffgarbage", b"[" * 50_000, b'"just a string"'):
            conn.sendall(struct.pack(">I", len(garbage)) + garbage)
            assert read_reply(conn)["error"]["code"] == "bad_request"
        assert raw_ask(conn, {"op": "hello", "versions": [1]})["ok"] is True
    assert ping(path) < 1

    # The staller is cut off after the frame timeout, with an answer.
    reply = read_reply(staller)
    assert reply["error"]["code"] == "bad_request"
    assert FRAME_TIMEOUT - 1 < time.monotonic() - stalled_at < FRAME_TIMEOUT + 3
    assert staller.recv(1) == b""
    staller.close()
    assert service.process is not None and service.process.poll() is None
    assert "Traceback" not in service.log_text()


# -- many clients at once -------------------------------------------------------------------


def _verify(public: Any, signature: bytes, digest: bytes, scheme: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    prehashed = Prehashed(hashes.SHA256())
    if scheme == "ecdsa":
        public.verify(signature, digest, ec.ECDSA(prehashed))
    else:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        public.verify(signature, digest, pss, prehashed)


@pytest.mark.parametrize(
    ("spec", "scheme", "clients", "each"),
    [("ec-p256", "ecdsa", 6, 50), ("rsa-2048", "pss", 4, 25)],
    ids=["ecdsa-p256", "rsa2048-pss"],
)
def test_concurrent_clients_each_get_valid_signatures(
    service: P11Server,
    softhsm_token: SoftHsmToken,
    device_key: SoftHsmKey,
    spec: str,
    scheme: str,
    clients: int,
    each: int,
) -> None:
    key = device_key if spec == "ec-p256" else softhsm_token.generate_key("rsa-2048", label="rsa")
    uri = None if key is device_key else key.uri  # None: the service's default key
    failures: list[BaseException] = []
    signed = [0] * clients
    start = threading.Barrier(clients)

    def client(index: int) -> None:
        try:
            signer = SocketSigner(service.socket_path, uri)
            assert signer.public_key() == key.public_key
            start.wait()
            for _ in range(each):
                digest = hashlib.sha256(os.urandom(32)).digest()
                signature = signer.sign_digest(digest, "sha256", scheme)  # type: ignore[arg-type]
                _verify(key.public_key, signature, digest, scheme)
                signed[index] += 1
            signer.close()
        except (InvalidSignature, errors.AgentError, AssertionError) as error:
            failures.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    assert signed == [each] * clients
    if isinstance(key.public_key, rsa.RSAPublicKey):
        assert key.public_key.key_size == 2048


def test_signatures_per_second_socket_next_to_module(
    service: P11Server, softhsm_token: SoftHsmToken, device_key: SoftHsmKey
) -> None:
    """Measured in one run, same key: the cost of the socket hop (printed with -s)."""
    from edgeagent.signing.module_signer import open_module_signer

    count = 300
    digests = [hashlib.sha256(os.urandom(8)).digest() for _ in range(count)]

    def rate(signer: Any) -> float:
        signer.sign_digest(digests[0], "sha256", "ecdsa")  # warm up
        started = time.perf_counter()
        for digest in digests:
            signer.sign_digest(digest, "sha256", "ecdsa")
        return count / (time.perf_counter() - started)

    via_socket = SocketSigner(service.socket_path, None)
    module = open_module_signer(SOFTHSM_MODULE, device_key.uri, softhsm_token.pin)
    try:
        socket_rate, module_rate = rate(via_socket), rate(module)
    finally:
        via_socket.close()
        module.close()
    print(
        f"\nECDSA P-256 on SoftHSM2, one client: module {module_rate:.0f} sig/s, "
        f"socket {socket_rate:.0f} sig/s ({socket_rate / module_rate:.0%})"
    )
    assert socket_rate > 100  # far above a TLS handshake's needs; catches a stall per request


# -- starting the service ---------------------------------------------------------------------


def test_a_stale_socket_file_does_not_stop_the_service(service_factory: Any) -> None:
    server = service_factory()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as crashed:
        crashed.bind(str(server.socket_path))  # closed without unlink: a crash's leftover
    assert server.socket_path.is_socket()

    server.start()

    assert ping(server.socket_path) < 1
    assert "removing stale socket" in server.log_text()


def test_a_live_services_socket_is_not_stolen(service: P11Server, service_factory: Any) -> None:
    second = service_factory("second")
    second.socket_path = service.socket_path
    process = second.spawn("--socket-path", str(service.socket_path))
    assert process.wait(30) == exit_code_for(errors.ServiceError("x"))
    assert str(service.socket_path) in second.log_text()
    assert "already serving" in second.log_text()
    assert ping(service.socket_path) < 1  # the first one still serves


def test_a_foreign_listener_on_the_path_is_not_stolen(service_factory: Any) -> None:
    server = service_factory()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as foreign:
        foreign.bind(str(server.socket_path))
        foreign.listen(1)
        process = server.spawn()
        assert process.wait(30) == exit_code_for(errors.ServiceError("x"))
    assert "something is already listening" in server.log_text()
    assert str(server.socket_path) in server.log_text()


# Sets LISTEN_FDS/LISTEN_PID as systemd does, for its own pid, then becomes
# `agent p11-server` (exec keeps the pid).
LAUNCHER = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_systemd_socket_activation(service_factory: Any, socket_dir: Path) -> None:
    server = service_factory("activated", "never-bound.sock")
    activated = socket_dir / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(activated))
    listener.listen(16)
    # What a .socket unit with SocketMode=0660 and SocketGroup=nogroup makes.
    os.chown(activated, -1, NOBODY)
    activated.chmod(0o660)

    server.spawn(
        argv=[
            sys.executable,
            "-c",
            LAUNCHER,
            str(listener.fileno()),
            str(AGENT),
            "-v",
            "p11-server",
        ],
        pass_fds=(listener.fileno(),),
    )
    listener.close()  # the service holds it now
    server.wait_ready(activated)

    assert "the socket systemd passed" in server.log_text()
    assert not server.socket_path.exists()  # it did not bind its own
    # With no allowed_groups configured, members of the socket's group are served.
    hello, pong = replies_as(activated, 4242, NOBODY, PING)
    assert hello is not None and hello["ok"] is True and pong == {"ok": True}
    # Outside the group the file mode stops the client at connect()...
    assert "PermissionError" in run_as(activated, 4242, 4242).stderr
    # ...and past a careless chmod, SO_PEERCRED still does.
    activated.chmod(0o666)
    [refusal] = replies_as(activated, 4242, 4242, PING)
    assert refusal is not None and refusal["error"]["code"] == "not_allowed"
    assert "refused peer uid=4242 gid=4242" in server.log_text()


def test_keys_on_other_tokens_are_not_served(
    service_factory: Any, softhsm: SoftHsm, softhsm_token: SoftHsmToken, device_key: SoftHsmKey
) -> None:
    other_token = softhsm.create_token(pin=softhsm_token.pin)  # the same PIN opens it
    foreign = other_token.generate_key("ec-p256", label="not-for-clients")
    same_token = softhsm_token.generate_key("ec-p256", label="rotated")
    service: P11Server = service_factory().start()  # configured with device_key's URI
    with pytest.raises(errors.KeyNotFound) as caught:
        SocketSigner(service.socket_path, foreign.uri)
    assert "serves only keys on the token" in caught.value.cause
    # Nothing a client puts in the URI's query is used: no files read, no PIN tried.
    for query in ("pin-source=/dev/zero", "pin-value=guess", "module-path=/tmp/x.so"):
        with pytest.raises(errors.InvalidKeyUri):
            SocketSigner(service.socket_path, f"{device_key.uri}?{query}")
    # Another key on the served token (e.g. after `agent hsm create-key`) is fine.
    signer = SocketSigner(service.socket_path, same_token.uri)
    assert signer.public_key() == same_token.public_key
    signer.close()


def test_the_service_remembers_few_and_short_client_uris(
    softhsm_token: SoftHsmToken, device_key: SoftHsmKey
) -> None:
    """Remembering URI texts saves parsing; a client must not make the service hoard them."""
    from edgeagent.p11server.keys import (
        MAX_REMEMBERED_URI_LENGTH,
        MAX_REMEMBERED_URIS,
        TokenKeys,
    )

    keys = TokenKeys(SOFTHSM_MODULE, softhsm_token.pin, device_key.uri)
    try:
        for n in range(MAX_REMEMBERED_URIS + 10):
            assert keys.signer(f"{device_key.uri};x-n={n}").public_key() == device_key.public_key
        long_uri = f"{device_key.uri};x-pad={'a' * MAX_REMEMBERED_URI_LENGTH}"
        assert keys.signer(long_uri).public_key() == device_key.public_key
        remembered = keys._by_client_uri  # the bound is what is tested
        assert 0 < len(remembered) <= MAX_REMEMBERED_URIS
        assert long_uri not in remembered
    finally:
        keys.close()


def test_a_client_over_the_limit_is_told_busy_and_the_server_recovers(service: P11Server) -> None:
    from edgeagent.p11server.server import MAX_CLIENTS_PER_UID

    held = [connect_raw(service.socket_path) for _ in range(MAX_CLIENTS_PER_UID)]
    try:
        for conn in held:  # each is accepted and holds a slot once it is greeted
            assert raw_ask(conn, {"op": "hello", "versions": [1]})["ok"] is True
        with connect_raw(service.socket_path) as extra:
            reply = read_reply(extra)
        assert reply["error"]["code"] == "busy"
    finally:
        held.pop().close()
    deadline = time.monotonic() + 5
    while True:  # the freed slot is usable again
        try:
            ping(service.socket_path, timeout=2)
            break
        except (OSError, AssertionError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    for conn in held:
        conn.close()

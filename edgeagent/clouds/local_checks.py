"""`agent doctor <cloud>`'s checks of the gateway's own side: the local broker and the bridge.

    for label, check in local_checks(config_dir, config, profile, skip=NotChecked):
        detail = check()        # or raises our error (with its fix), or ``skip``

The cloud can be perfect while nothing reaches it: the local broker down, or
the bridge not running. The local broker gets a real MQTT CONNECT with a
throw-away client id and a clean session (nothing is left on the broker, and
no client's session is taken over) and must answer CONNACK 0.

The bridge must run once the cloud has been connected here, i.e. once a
bridge wrote its status file in run.path (`agent status` reads the same
file): then a bridge that is not running is a failure, whether it crashed,
was killed or was stopped by `agent disconnect`, with the fix `agent connect
<cloud>`. A cloud never connected on this gateway (no status file, not in
``<config dir>/connected-clouds``) is "not checked", not a failure: doctor is
also the check people run before their first `agent connect`.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from edgeagent.bridge import connected
from edgeagent.bridge.service import BridgeService
from edgeagent.clouds.profile import CloudProfile
from edgeagent.clouds.status import cloud_status, human_time
from edgeagent.config import AgentConfig
from edgeagent.errors import BridgeNotRunning, BrokerRefused, BrokerUnreachable
from edgeagent.mqtt import packets as p

LOCAL_TIMEOUT = 5.0
"""The local broker is on the gateway: it answers in milliseconds or not at all."""

Check = tuple[str, Callable[[], str]]


def local_checks(
    config_dir: Path,
    config: AgentConfig,
    profile: CloudProfile,
    *,
    skip: Callable[[str], Exception],
) -> Iterator[Check]:
    """Doctor's (label, check) pairs for the local broker and the bridge.

    ``skip(reason)`` makes the exception doctor shows as "not checked".
    """
    yield "local broker answers", lambda: local_broker_answers(config)
    yield f"{profile.title} bridge running", lambda: bridge_runs(config_dir, config, profile, skip)


def local_broker_answers(config: AgentConfig) -> str:
    """CONNECT with a throw-away client id and a clean session; CONNACK 0, or our error."""
    host, port = config.mqtt.client.host, config.mqtt.client.port
    where = f"the local broker {host}:{port}"
    fix = "start the local broker (e.g. systemctl start mosquitto), or fix mqtt.client.host / "
    fix += "mqtt.client.port"
    client_id = f"agent-doctor-{secrets.token_hex(4)}"
    try:
        sock = socket.create_connection((host, port), timeout=LOCAL_TIMEOUT)
    except OSError as error:
        raise BrokerUnreachable(
            f"{where} is unreachable: {error.strerror or error}", fix
        ) from error
    with sock:
        try:
            sock.sendall(p.connect(client_id, keepalive=10, clean_session=True))
            code = _read_connack(sock)
        except TimeoutError as error:
            raise BrokerUnreachable(
                f"{where} accepted TCP but sent no CONNACK within {LOCAL_TIMEOUT:.0f} s",
                "check that mqtt.client.port is the broker's MQTT port (not TLS, not websockets)",
            ) from error
        except (OSError, p.ProtocolError) as error:
            raise BrokerRefused(
                f"{where} closed the connection before it answered CONNECT: {error}",
                "check that mqtt.client.port is the broker's plain MQTT listener, and the "
                "broker's log for why it refused the client",
            ) from error
        if code != 0:
            raise BrokerRefused(
                f"{where} refused a client: {p.CONNACK_REASONS.get(code, code)}",
                "let the gateway's own clients connect to the listener at mqtt.client.port "
                "(mosquitto: allow_anonymous true on a listener bound to localhost)",
            )
        with contextlib.suppress(OSError):  # it answered; how it hangs up is its business
            sock.sendall(p.DISCONNECT_PACKET)
    return f"{host}:{port}, CONNACK as {client_id}"


def _read_connack(sock: socket.socket) -> int:
    reader = p.PacketReader()
    while True:
        data = sock.recv(4096)
        if not data:
            raise ConnectionResetError("the broker closed the connection")
        for kind, _, body in reader.feed(data):
            if kind != p.CONNACK:
                raise p.ProtocolError(f"expected CONNACK, got packet type {kind}")
            return p.parse_connack(body)[1]


def bridge_runs(
    config_dir: Path,
    config: AgentConfig,
    profile: CloudProfile,
    skip: Callable[[str], Exception],
) -> str:
    """Pid, since when and how; else BridgeNotRunning, or ``skip`` if it never ran here."""
    cloud = cloud_status(config, config_dir, profile.name)
    process, status = cloud.process, cloud.status
    if process.running:
        pid = f"pid {process.pid}" if process.pid is not None else "pid unknown"
        since = f" since {human_time(status.started_at)}" if cloud.current and status else ""
        how = {
            "systemd": f"systemd unit {process.unit}",
            "pid file": f"pid file {process.pid_file}",
        }
        return f"{pid}{since} ({how.get(process.managed_by or '', 'in the foreground')})"
    service = BridgeService.of(profile.name, config_dir, config)
    # Not whether agent-bridge.service is enabled: it serves every connected
    # cloud, so another cloud keeps it enabled.
    if status is None and profile.name not in connected.names(config_dir):
        raise skip(
            f"the {profile.title} bridge has never run here: `agent connect {profile.name}` "
            "starts it"
        )
    problem = cloud.problem()
    raise BridgeNotRunning(
        problem.cause if problem is not None else f"the {profile.title} bridge is not running",
        f"agent connect {profile.name}   (the bridge's log: {service.log_hint})",
    )

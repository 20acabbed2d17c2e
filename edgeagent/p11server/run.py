"""Start the signing service from the configuration and command-line overrides.

settings = ServerSettings.from_config(load_config(dir), socket_path=...)
exec_runtime(settings, verbose)     # `agent p11-server`: becomes the lean runtime
serve(settings, stop)               # what the runtime runs
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from edgeagent.errors import AgentError, MissingConfigValue, PinIncorrect, PinLocked
from edgeagent.p11server.keys import TokenKeys
from edgeagent.p11server.listener import bound_socket, systemd_socket
from edgeagent.p11server.peers import PeerPolicy
from edgeagent.p11server.server import SigningServer

if TYPE_CHECKING:
    from edgeagent.config import AgentConfig

RUNTIME_MODULE = "edgeagent.cli.p11_server_runtime"

log = logging.getLogger("edgeagent.p11server")


@dataclass(frozen=True)
class ServerSettings:
    module_path: Path
    pin: str | None
    uri: str | None
    socket_path: Path
    socket_group: str | None
    allowed_users: str
    allowed_groups: str
    pin_from: str = "device.cryptoki.pin"
    """Where ``pin`` came from, for a refusal's fix (an AGENT_* variable is named as such)."""

    @classmethod
    def from_config(
        cls,
        config: AgentConfig,
        module_path: Path | None = None,
        uri: str | None = None,
        socket_path: Path | None = None,
        socket_group: str | None = None,
        allowed_users: str | None = None,
        allowed_groups: str | None = None,
    ) -> ServerSettings:
        cryptoki = config.device.cryptoki
        module = module_path or cryptoki.module_path
        if module is None:
            raise MissingConfigValue(
                "the signing service needs a PKCS#11 module: device.cryptoki.module_path "
                "is not set",
                "agent config set device.cryptoki.module_path /usr/lib/softhsm/libsofthsm2.so "
                "(or pass --module-path)",
            )
        server = config.p11_server
        return cls(
            module_path=module,
            pin=cryptoki.pin.get_secret_value() if cryptoki.pin is not None else None,
            uri=uri or cryptoki.uri or config.device.key_uri,
            socket_path=socket_path or cryptoki.socket_path,
            socket_group=socket_group or server.socket_group,
            allowed_users=allowed_users if allowed_users is not None else server.allowed_users,
            allowed_groups=allowed_groups if allowed_groups is not None else server.allowed_groups,
            pin_from=config.named("device.cryptoki.pin"),
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), default=str).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ServerSettings:
        raw: dict[str, Any] = json.loads(data)
        raw["module_path"] = Path(raw["module_path"])
        raw["socket_path"] = Path(raw["socket_path"])
        return cls(**raw)


def exec_runtime(settings: ServerSettings, verbose: bool) -> NoReturn:
    """Become the lean service runtime (same pid: systemd's LISTEN_PID still matches)."""
    from edgeagent.lean_exec import exec_lean

    exec_lean(RUNTIME_MODULE, settings.to_json(), *(["--verbose"] if verbose else []))


def serve(settings: ServerSettings, stop: threading.Event) -> None:
    """Serve until ``stop`` is set. Errors in the set-up are raised; token errors logged."""
    # Checked now so a misspelt user or group fails at start; rebuilt below
    # once the socket's real group is known.
    PeerPolicy.from_names(settings.allowed_users, settings.allowed_groups, settings.socket_group)
    keys = TokenKeys(settings.module_path, settings.pin, settings.uri, settings.pin_from)
    try:
        # Open the default key now, so a wrong PIN or a missing token shows
        # at start; the service keeps running (a token may be plugged in
        # later) but never retries a refused PIN.
        signer = keys.signer(None)
        log.warning("serving key %s", signer.location)
    except (PinIncorrect, PinLocked) as error:
        log.error("%s; requests will be refused until the service restarts", error)
    except AgentError as error:
        log.error("no key yet: %s", error)
    inherited = systemd_socket()
    listening: AbstractContextManager[socket.socket]
    if inherited is not None:
        listening = nullcontext(inherited)
        where = "the socket systemd passed"
    else:
        listening = bound_socket(settings.socket_path, settings.socket_group)
        where = str(settings.socket_path)
    try:
        with listening as sock:
            # "Unset: the socket's group" means the group the socket file really
            # has: systemd's SocketGroup=, or ours when we bound it.
            policy = PeerPolicy.from_names(
                settings.allowed_users,
                settings.allowed_groups,
                settings.socket_group or _group_of(sock),
            )
            log.warning("signing service listening on %s; serving %s", where, policy.describe())
            SigningServer(sock, keys, policy).serve_until(stop)
    finally:
        keys.close()


def _group_of(sock: socket.socket) -> str | None:
    """The gid (as text) of the socket's file; None for an abstract or unnamed socket."""
    name = sock.getsockname()
    if not isinstance(name, str) or not name:
        return None
    try:
        return str(os.stat(name).st_gid)
    except OSError:
        return None

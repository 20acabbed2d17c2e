"""What the agent needs to know about one cloud to bridge to it."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgeagent.config import DeviceIdentity


@dataclass(frozen=True)
class RoundTrip:
    """`agent connect`'s proof that the cloud answers, on the local broker's side.

    Publish ``payload`` on ``request``; the cloud answered when a message
    arrives on ``answer`` (``{n}`` in either: one request number per attempt)
    that starts with ``answer_prefix``, or, with ``echo``, equals what was sent.
    """

    request: str
    answer: str
    payload: bytes = b""
    answer_prefix: bytes = b""
    echo: bool = False
    attempts: int = 1
    seconds_per_attempt: float = 15.0
    fix: str = "register the device (or its CA) with the cloud"
    """What to do when the cloud does not answer."""


@dataclass(frozen=True)
class CloudProfile:
    """One cloud's endpoint, identity and MQTT rules, resolved from the config."""

    name: str  # as typed on the command line: "c8y"
    title: str  # for humans: "Cumulocity"
    host: str
    port: int
    root_cert_path: Path
    identity: DeviceIdentity
    rules_path: Path
    max_qos: int = 2
    forwards_retain: bool = False
    max_payload: int | None = None
    alpn: tuple[bytes, ...] = ()
    tls_min_version: str = "1.2"  # <cloud>.tls.min_version
    username_format: str | None = None
    """The MQTT user name with ``{device_id}`` in it; None: no user name."""
    round_trip: RoundTrip | None = None

    @property
    def health_topic(self) -> str:
        """Retained status of this cloud's bridge on the local broker."""
        return f"agent/bridge/{self.name}/health"

    def username(self, device_id: str) -> str | None:
        if self.username_format is None:
            return None
        return self.username_format.format(device_id=device_id)


def rules_path(cloud: str, config_dir: Path) -> Path:
    """The user's copy in <config dir>/bridge/ if there is one, else ours."""
    own = config_dir / "bridge" / f"{cloud}.toml"
    if own.is_file():
        return own
    return Path(str(resources.files("edgeagent.clouds") / "rules" / f"{cloud}.toml"))

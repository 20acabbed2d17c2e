"""Everything the bridge process needs, resolved, as plain values.

The configuration is loaded and validated with the full schema by
`agent bridge run`; the long-running bridge then starts from this plan in a
fresh interpreter that never imports the configuration layer (pydantic,
tomlkit) nor paho: about 15 MB less resident memory for the process that
runs all day. The plan holds the PIN in socket-less modes, so it only ever
travels through an inherited pipe, never argv or the environment.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeagent.bridge.cert_check import CertCheck
from edgeagent.signing.open import SignerSpec


@dataclass(frozen=True)
class BridgePlan:
    cloud: str
    title: str
    local_host: str
    local_port: int
    local_client_id: str
    cloud_host: str
    cloud_port: int
    cloud_client_id: str
    cloud_username: str | None
    alpn: list[str]
    cert_path: str
    cert_path_key: str  # the configuration key cert_path came from, for messages
    root_cert_path: str
    rules_path: str
    health_topic: str
    max_qos: int
    forwards_retain: bool
    max_payload: int | None
    signer: SignerSpec = field(repr=False)
    tls_min_version: str = "1.2"
    cert_check: CertCheck | None = None
    """The daily certificate check, when no systemd timer does it."""
    status_path: str | None = None
    """run.path/status-<cloud>.json: what the bridge is doing, for `agent status`."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> BridgePlan:
        raw: dict[str, Any] = json.loads(data)
        raw["signer"] = SignerSpec(**raw["signer"])
        if raw.get("cert_check") is not None:
            raw["cert_check"] = CertCheck(**raw["cert_check"])
        return cls(**raw)

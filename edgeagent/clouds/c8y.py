"""Cumulocity IoT: MQTT over TLS with a device certificate (the ``c8y`` profile)."""

from __future__ import annotations

from pathlib import Path

from edgeagent.clouds.profile import CloudProfile, RoundTrip, rules_path
from edgeagent.config import AgentConfig

# Cumulocity's MQTT service refuses larger payloads.
TITLE = "Cumulocity"
MAX_PAYLOAD = 16184


def profile(config: AgentConfig, config_dir: Path) -> CloudProfile:
    host, port = config.c8y.host_port()
    return CloudProfile(
        name="c8y",
        title=TITLE,
        host=host,
        port=port,
        root_cert_path=config.c8y.root_cert_path,
        identity=config.identity("c8y"),
        rules_path=rules_path("c8y", config_dir),
        max_qos=2,
        forwards_retain=False,  # Cumulocity ignores retained messages
        max_payload=MAX_PAYLOAD,
        tls_min_version=config.c8y.tls.min_version,
        # An empty s/uat asks for a JWT: the platform answers 71,<token> on s/dat.
        round_trip=RoundTrip(
            "c8y/s/uat",
            "c8y/s/dat",
            answer_prefix=b"71,",
            fix="register the device (or its CA) in the Cumulocity tenant",
        ),
    )

"""Azure IoT Hub: MQTT over TLS with an X.509 device identity (the ``az`` profile).

Client id = device id; user name ``<hub host>/<device id>/?api-version=2021-04-12``;
no password (the certificate authenticates). The hub closes the connection on
a QoS 2 PUBLISH, so local QoS 2 goes out as QoS 1 (the local side is still
completed only once the hub acked); it keeps no retained messages, so the
retain flag is not forwarded.
"""

from __future__ import annotations

from pathlib import Path

from edgeagent.clouds.profile import CloudProfile, RoundTrip, rules_path
from edgeagent.config import AgentConfig

TITLE = "Azure IoT Hub"
API_VERSION = "2021-04-12"
MAX_PAYLOAD = 256 * 1024  # IoT Hub's device-to-cloud message limit


def profile(config: AgentConfig, config_dir: Path) -> CloudProfile:
    host, port = config.az.host_port()
    return CloudProfile(
        name="az",
        title=TITLE,
        host=host,
        port=port,
        root_cert_path=config.az.root_cert_path,
        identity=config.identity("az"),
        rules_path=rules_path("az", config_dir),
        max_qos=1,
        forwards_retain=False,
        max_payload=MAX_PAYLOAD,
        tls_min_version=config.az.tls.min_version,
        # The hub's host name, never a port: what IoT Hub expects in the user name.
        username_format=f"{host}/{{device_id}}/?api-version={API_VERSION}",
        # Reading the twin: the hub answers every GET with its $rid.
        round_trip=RoundTrip(
            "az/twin/GET/?$rid={n}",
            "az/twin/res/200/?$rid={n}",
            fix="create the device identity in the IoT Hub, named after the device id, "
            "CA-signed or with the certificate's thumbprint",
        ),
    )

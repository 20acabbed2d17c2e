"""AWS IoT Core: MQTT over TLS with the thing's certificate (the ``aws`` profile).

Client id = device id = thing name; no user name. No QoS 2 (forwarded as
QoS 1, the local side completed once AWS acked); retained messages are kept.
On port 443 AWS tells MQTT from HTTPS by ALPN: the client offers
``x-amzn-mqtt-ca`` (and SNI, as on every port), and a server that does not
select it is refused (``AlpnNotSelected``).
"""

from __future__ import annotations

from pathlib import Path

from edgeagent.clouds.profile import CloudProfile, RoundTrip, rules_path
from edgeagent.config import AgentConfig

TITLE = "AWS IoT Core"
MAX_PAYLOAD = 128 * 1024  # AWS IoT Core's message size limit
HTTPS_PORT = 443
MQTT_ALPN = b"x-amzn-mqtt-ca"


def profile(config: AgentConfig, config_dir: Path) -> CloudProfile:
    host, port = config.aws.host_port()
    return CloudProfile(
        name="aws",
        title=TITLE,
        host=host,
        port=port,
        root_cert_path=config.aws.root_cert_path,
        identity=config.identity("aws"),
        rules_path=rules_path("aws", config_dir),
        max_qos=1,
        forwards_retain=True,
        max_payload=MAX_PAYLOAD,
        alpn=(MQTT_ALPN,) if port == HTTPS_PORT else (),
        tls_min_version=config.aws.tls.min_version,
        # AWS hands the device its own message back on a topic it subscribed to;
        # retried: just-in-time provisioning creates the thing on first connect.
        round_trip=RoundTrip(
            "aws/test-connection",
            "aws/connection-success",
            echo=True,
            attempts=3,
            seconds_per_attempt=10.0,
            fix="create the thing (named after the device id), attach the certificate and "
            "a policy that allows iot:Publish, iot:Subscribe and iot:Receive on "
            "thinedge/devices/<device id>/test-connection",
        ),
    )

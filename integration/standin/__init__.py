"""Stand-in clouds that answer like the real ones, for tests, the demo and benchmarks.

The stand-in broker itself is mosquitto with TLS and client certificates
(tests/support/mosquitto.py); next to it:

- `responders.CumulocityResponder`: an empty ``s/uat`` -> ``71,<JWT>`` on ``s/dat``.
- `responders.AzureTwinResponder`: ``$iothub/twin/GET/?$rid=n`` ->
  ``$iothub/twin/res/200/?$rid=n`` with the twin document (and reported-property PATCHes).
- AWS needs no responder (the broker echoes the test-connection message to
  its publisher); `aws_policy.AwsPolicy` is the policy that lets it, or not.
- `alpn_front.AlpnFront`: AWS's port 443, TLS that requires ALPN
  ``x-amzn-mqtt-ca``, relaying to the stand-in broker.

Each responder has a ``silent`` switch for "the cloud does not answer".
``python -m integration.standin --help`` runs any of them in the foreground
(the demo script's way in). Only the standard library and paho-mqtt.
"""

from integration.standin.alpn_front import AWS_MQTT_ALPN, AlpnFront, FrontConnection
from integration.standin.aws_policy import AwsPolicy
from integration.standin.broker import BrokerAddress, StandinError
from integration.standin.responders import (
    AzureTwinResponder,
    CumulocityResponder,
    Exchange,
    Responder,
)

__all__ = [
    "AWS_MQTT_ALPN",
    "AlpnFront",
    "AwsPolicy",
    "AzureTwinResponder",
    "BrokerAddress",
    "CumulocityResponder",
    "Exchange",
    "FrontConnection",
    "Responder",
    "StandinError",
]

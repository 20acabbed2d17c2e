"""The az and aws profiles: user name, limits, ALPN on AWS's port 443."""

from __future__ import annotations

from pathlib import Path

from edgeagent.clouds.profile import CloudProfile
from edgeagent.clouds.registry import cloud_profile
from edgeagent.config import AgentConfig


def _profile(cloud: str, url: str, tmp_path: Path) -> CloudProfile:
    return cloud_profile(cloud, AgentConfig.model_validate({cloud: {"url": url}}), tmp_path)


def test_azure_user_name_is_the_hub_host_device_id_and_api_version(tmp_path: Path) -> None:
    az = _profile("az", "my-hub.azure-devices.net", tmp_path)
    assert (az.host, az.port) == ("my-hub.azure-devices.net", 8883)
    assert az.username("gw-1") == "my-hub.azure-devices.net/gw-1/?api-version=2021-04-12"
    # A port in az.url is where to dial, never part of the user name.
    az = _profile("az", "my-hub.azure-devices.net:9883", tmp_path)
    assert az.port == 9883
    assert az.username("gw-1") == "my-hub.azure-devices.net/gw-1/?api-version=2021-04-12"


def test_azure_limits(tmp_path: Path) -> None:
    az = _profile("az", "hub.example", tmp_path)
    assert (az.max_qos, az.forwards_retain, az.max_payload) == (1, False, 256 * 1024)
    assert az.alpn == ()
    assert az.health_topic == "agent/bridge/az/health"


def test_aws_limits_and_no_user_name(tmp_path: Path) -> None:
    aws = _profile("aws", "abc-ats.iot.eu-west-1.amazonaws.com", tmp_path)
    assert aws.port == 8883
    assert aws.username("thing") is None
    assert (aws.max_qos, aws.forwards_retain, aws.max_payload) == (1, True, 128 * 1024)
    assert aws.alpn == ()


def test_aws_on_port_443_offers_the_mqtt_alpn(tmp_path: Path) -> None:
    aws = _profile("aws", "abc-ats.iot.eu-west-1.amazonaws.com:443", tmp_path)
    assert aws.port == 443
    assert aws.alpn == (b"x-amzn-mqtt-ca",)


def test_a_per_cloud_key_wins_over_the_device_key(tmp_path: Path) -> None:
    config = AgentConfig.model_validate(
        {
            "device": {"key_uri": "pkcs11:token=t;object=shared"},
            "az": {"url": "hub.example", "device": {"key_uri": "pkcs11:token=t;object=az"}},
            "aws": {"url": "aws.example"},
        }
    )
    assert cloud_profile("az", config, tmp_path).identity.key_uri == "pkcs11:token=t;object=az"
    assert cloud_profile("az", config, tmp_path).identity.key_uri_key == "az.device.key_uri"
    assert cloud_profile("aws", config, tmp_path).identity.key_uri == "pkcs11:token=t;object=shared"

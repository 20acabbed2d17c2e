"""DeviceIdentity: the one place that picks <cloud>.device.* over device.*, and says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent.config import AgentConfig
from edgeagent.errors import MissingConfigValue
from edgeagent.signing.open import signer_spec


def test_device_wide_values_name_the_device_keys() -> None:
    identity = AgentConfig.model_validate(
        {"device": {"key_uri": "pkcs11:token=t", "key_pin": "1234"}}
    ).identity("c8y")
    assert identity.cloud == "c8y"
    assert identity.cert_path == Path("/etc/agent/device-certs/device.pem")
    assert identity.cert_path_key == "device.cert_path"
    assert identity.key_uri_key == "device.key_uri"
    assert identity.key_pin_key == "device.key_pin"


def test_a_cloud_own_values_name_the_cloud_keys() -> None:
    identity = AgentConfig.model_validate(
        {
            "device": {"key_uri": "pkcs11:token=t", "cert_path": "/d.pem"},
            "c8y": {
                "device": {
                    "key_uri": "pkcs11:token=t;object=c",
                    "cert_path": "/c.pem",
                    "key_pin": "1",
                }
            },
        }
    ).identity("c8y")
    assert (identity.key_uri, identity.key_uri_key) == (
        "pkcs11:token=t;object=c",
        "c8y.device.key_uri",
    )
    assert (identity.cert_path, identity.cert_path_key) == (Path("/c.pem"), "c8y.device.cert_path")
    assert identity.key_pin_key == "c8y.device.key_pin"


def test_no_key_file_names_both_keys_of_the_identitys_cloud() -> None:
    config = AgentConfig()
    with pytest.raises(MissingConfigValue, match=r"c8y\.device\.key_path / device\.key_path"):
        signer_spec(config, config.identity("c8y"))

from pathlib import Path

import pytest

from edgeagent.errors import ConfigError, MissingConfigValue
from edgeagent.pkcs11.pins import choose_pin
from edgeagent.pkcs11.uri import Pkcs11Uri


def uri(text: str) -> Pkcs11Uri:
    return Pkcs11Uri.parse(text)


def test_most_specific_pin_wins(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("from-file\n")
    full = uri(f"pkcs11:token=t?pin-source={pin_file}")
    with_value = uri("pkcs11:token=t?pin-value=from-uri")

    assert choose_pin(full, "token-wide", "per-key", "c8y.device.key_pin").source == (
        "c8y.device.key_pin"
    )
    assert choose_pin(full, "token-wide").pin == "from-file"
    assert choose_pin(with_value, "token-wide").pin == "from-uri"
    assert choose_pin(uri("pkcs11:token=t"), "token-wide").source == "device.cryptoki.pin"
    assert choose_pin(None, None).pin is None


def test_empty_values_count_as_unset() -> None:
    choice = choose_pin(uri("pkcs11:token=t"), "", "", "device.key_pin")
    assert choice.pin is None


def test_pin_source_as_file_uri(tmp_path: Path) -> None:
    (tmp_path / "pin").write_text("1234")
    assert choose_pin(uri(f"pkcs11:token=t?pin-source=file:{tmp_path}/pin"), None).pin == "1234"
    assert choose_pin(uri(f"pkcs11:token=t?pin-source=file://{tmp_path}/pin"), None).pin == "1234"


def test_missing_or_empty_pin_source_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MissingConfigValue, match="does not exist"):
        choose_pin(uri(f"pkcs11:token=t?pin-source={tmp_path}/nope"), None)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(MissingConfigValue, match="empty"):
        choose_pin(uri(f"pkcs11:token=t?pin-source={tmp_path}/empty"), None)


def test_unreadable_pin_source_is_not_a_pin_error(tmp_path: Path) -> None:
    target = tmp_path / "dir-not-file"
    target.mkdir()
    with pytest.raises(ConfigError, match="dir-not-file"):
        choose_pin(uri(f"pkcs11:token=t?pin-source={target}"), None)


def test_the_pin_is_never_in_the_repr() -> None:
    assert "s3cret" not in repr(choose_pin(None, "s3cret"))

"""The `agent hsm` rules of edgeagent.hsm (policy, keys, token_setup), against a fake TokenAdmin.

Which configuration key create-key writes or leaves, what delete-key
refuses, which PIN is asked for when: pure rules over a config dir and a
token that is a list in memory. The real token and the real `agent` are
tests/integration/test_hsm_commands.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgeagent.config import get, load_config, set_value
from edgeagent.errors import (
    ConfigError,
    FileWriteError,
    KeyInUse,
    KeyNotFound,
    TokenNotInitialized,
    UsageError,
)
from edgeagent.hsm import keys, policy, token_setup
from edgeagent.pkcs11.admin import CreatedKey, KeyListing, KeySpec, SlotListing
from edgeagent.pkcs11.uri import Pkcs11Uri

TOKEN = "pkcs11:token=fake"


def _uri(label: str, key_id: bytes) -> str:
    return str(Pkcs11Uri(token="fake", object=label, id=key_id, type="private"))


@dataclass
class FakeAdmin:
    """A token in memory with the TokenAdmin surface; records what it was asked."""

    keys: list[KeyListing] = field(default_factory=list)
    initialised: bool = True
    deleted: list[str] = field(default_factory=list)
    closed: bool = False

    @property
    def location(self) -> str:
        return "fake"

    def list_tokens(self) -> list[SlotListing]:
        return [SlotListing(0, self.initialised, "fake", "m", "m", "1", True, True, TOKEN)]

    def list_keys(self, uri: Pkcs11Uri | None) -> list[KeyListing]:
        def matches(key: KeyListing) -> bool:
            if uri is None:
                return True
            return (uri.object in (None, key.label)) and (uri.id in (None, key.id))

        return [key for key in self.keys if matches(key)]

    def create_key(
        self,
        uri: Pkcs11Uri | None,
        spec: KeySpec,
        label: str,
        key_id: bytes | None,
        force_new: bool,
    ) -> CreatedKey:
        if not self.initialised:
            raise TokenNotInitialized("no token", "init one")
        existing = [key for key in self.keys if key.label == label]
        if existing and not force_new:
            return CreatedKey(existing[0], reused=True)
        new_id = key_id or bytes([len(self.keys) + 1])
        key = KeyListing("fake", label, new_id, "EC secp256r1", _uri(label, new_id), None)
        self.keys.append(key)
        return CreatedKey(key, reused=False)

    def delete_key(
        self, uri: Pkcs11Uri | None, label: str | None, key_id: bytes | None
    ) -> list[str]:
        gone = self.list_keys(Pkcs11Uri(object=label, id=key_id))
        self.keys = [key for key in self.keys if key not in gone]
        self.deleted += [key.uri for key in gone]
        return [f"private key {key.uri}" for key in gone]

    def close(self) -> None:
        self.closed = True


@dataclass
class Pins:
    """A PinSource that records which PINs were asked for."""

    asked: list[str] = field(default_factory=list)

    def user_pin(self, *, confirm: bool = False) -> str:
        self.asked.append("user")
        return "123456"

    def so_pin(self) -> str:
        self.asked.append("so")
        return "12345678"

    def new_pin(self) -> str:
        self.asked.append("new")
        return "654321"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    set_value(tmp_path, "device.cryptoki.mode", "module")
    return tmp_path


def _value(config_dir: Path, key: str) -> str | None:
    try:
        return get(config_dir, key)
    except ConfigError:
        return None


# -- create-key: which configuration key is written -------------------------------------


def test_create_key_writes_device_key_uri_when_unset(config_dir: Path) -> None:
    outcome = keys.create_key(config_dir, FakeAdmin(), keys.KeyRequest())
    assert outcome.wrote and outcome.config_key == "device.key_uri"
    assert _value(config_dir, "device.key_uri") == outcome.created.entry.uri


def test_create_key_for_a_cloud_writes_only_that_clouds_key_uri(config_dir: Path) -> None:
    outcome = keys.create_key(config_dir, FakeAdmin(), keys.KeyRequest(cloud="c8y"))
    assert outcome.config_key == "c8y.device.key_uri"
    assert _value(config_dir, "c8y.device.key_uri") == outcome.created.entry.uri
    assert _value(config_dir, "device.key_uri") is None


def test_create_key_replaces_a_key_uri_naming_no_existing_key(config_dir: Path) -> None:
    set_value(config_dir, "device.key_uri", "pkcs11:token=fake;object=gone")
    outcome = keys.create_key(config_dir, FakeAdmin(), keys.KeyRequest())
    assert outcome.wrote and "names no existing key" in outcome.note
    assert _value(config_dir, "device.key_uri") == outcome.created.entry.uri


def test_create_key_leaves_a_key_uri_naming_another_existing_key(config_dir: Path) -> None:
    admin = FakeAdmin()
    first = keys.create_key(config_dir, admin, keys.KeyRequest(label="first"))
    second = keys.create_key(config_dir, admin, keys.KeyRequest(label="second"))
    assert not second.wrote
    assert second.suggestion == (f'agent config set device.key_uri "{second.created.entry.uri}"')
    assert _value(config_dir, "device.key_uri") == first.created.entry.uri


def test_create_key_reusing_the_configured_key_says_so(config_dir: Path) -> None:
    admin = FakeAdmin()
    keys.create_key(config_dir, admin, keys.KeyRequest())
    again = keys.create_key(config_dir, admin, keys.KeyRequest())
    assert again.created.reused and not again.wrote and "names it already" in again.note


def test_create_key_without_writing_hands_back_the_command(config_dir: Path) -> None:
    outcome = keys.create_key(config_dir, FakeAdmin(), keys.KeyRequest(write_config=False))
    assert not outcome.wrote and outcome.suggestion is not None
    assert _value(config_dir, "device.key_uri") is None


# -- create-key: a token is initialised only when there is none, in module mode -----------


def test_no_token_and_no_pins_is_the_tokens_error(config_dir: Path) -> None:
    with pytest.raises(TokenNotInitialized):
        keys.create_key(config_dir, FakeAdmin(initialised=False), keys.KeyRequest())


def test_socket_mode_never_initialises_a_token(config_dir: Path) -> None:
    set_value(config_dir, "device.cryptoki.mode", "socket")
    pins = Pins()
    with pytest.raises(TokenNotInitialized):
        keys.create_key(config_dir, FakeAdmin(initialised=False), keys.KeyRequest(), pins)
    assert pins.asked == []


def test_a_named_token_that_is_missing_is_not_initialised(config_dir: Path) -> None:
    request = keys.KeyRequest(token_uri=Pkcs11Uri.parse("pkcs11:token=other"))
    pins = Pins()
    with pytest.raises(TokenNotInitialized):
        keys.create_key(config_dir, FakeAdmin(initialised=False), request, pins)
    assert pins.asked == []


# -- the PIN policy -----------------------------------------------------------------------


def test_socket_mode_asks_for_no_pin(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str | None] = []
    monkeypatch.setattr(
        policy, "open_token_admin", lambda config, pin: opened.append(pin) or FakeAdmin()
    )
    set_value(config_dir, "device.cryptoki.mode", "socket")
    pins = Pins()
    policy.open_admin(load_config(config_dir), pins)
    assert opened == [None] and pins.asked == []

    set_value(config_dir, "device.cryptoki.mode", "module")
    policy.open_admin(load_config(config_dir), pins)
    assert opened == [None, "123456"] and pins.asked == ["user"]


@pytest.mark.parametrize("command", ["init", "change-pin"])
def test_init_and_change_pin_refuse_socket_mode_before_asking_a_pin(
    config_dir: Path, command: str
) -> None:
    set_value(config_dir, "device.cryptoki.mode", "socket")
    pins = Pins()
    with pytest.raises(ConfigError, match=f"agent hsm {command}"):
        if command == "init":
            token_setup.init(config_dir, "t", pins)
        else:
            token_setup.change_user_pin(config_dir, None, pins, reset=False)
    assert pins.asked == []


def test_change_pin_needs_exactly_one_of_the_old_and_the_so_pin(config_dir: Path) -> None:
    with pytest.raises(UsageError):
        token_setup.change_pin(config_dir, None, "1", old_pin="2", so_pin="3")
    with pytest.raises(UsageError):
        token_setup.change_pin(config_dir, None, "1")


# -- delete-key ---------------------------------------------------------------------------


def _admin_with(*labels: str) -> FakeAdmin:
    admin = FakeAdmin()
    for label in labels:
        admin.create_key(None, "ec-p256", label, None, True)
    return admin


def test_delete_key_without_a_label_or_id_is_a_usage_error(config_dir: Path) -> None:
    admin = _admin_with("spare")
    with pytest.raises(UsageError, match="label or id"):
        keys.delete_key(config_dir, admin, None, None, None)
    with pytest.raises(UsageError):
        keys.delete_key(config_dir, admin, Pkcs11Uri.parse(TOKEN), None, None)
    assert admin.deleted == []


def test_delete_key_of_no_key_is_key_not_found(config_dir: Path) -> None:
    with pytest.raises(KeyNotFound, match="no private key matches"):
        keys.delete_key(config_dir, _admin_with("spare"), None, "nosuch", None)


@pytest.mark.parametrize("setting", ["device.key_uri", "c8y.device.key_uri", "device.cryptoki.uri"])
def test_delete_key_refuses_a_configured_key_unless_forced(config_dir: Path, setting: str) -> None:
    admin = _admin_with("device-key")
    set_value(config_dir, setting, admin.keys[0].uri)
    with pytest.raises(KeyInUse, match=setting):
        keys.delete_key(config_dir, admin, None, "device-key", None)
    assert admin.deleted == []
    keys.delete_key(config_dir, admin, None, "device-key", None, force=True)
    assert len(admin.deleted) == 1


def test_delete_key_asks_and_a_no_deletes_nothing(config_dir: Path) -> None:
    admin = _admin_with("spare")
    shown: list[list[KeyListing]] = []

    def no(keys: list[KeyListing]) -> bool:
        shown.append(keys)
        return False

    assert keys.delete_key(config_dir, admin, None, "spare", None, confirm=no) is None
    assert [key.label for key in shown[0]] == ["spare"] and admin.deleted == []


# -- filters and files --------------------------------------------------------------------


def test_key_filter_narrows_a_uri_by_label_and_id() -> None:
    assert keys.key_filter(None, None, None) is None
    narrowed = keys.key_filter(Pkcs11Uri.parse(TOKEN), "k", b"\x01")
    assert narrowed == Pkcs11Uri(token="fake", object="k", id=b"\x01")
    assert keys.key_filter(None, None, b"\x02") == Pkcs11Uri(id=b"\x02")


def test_an_unwritable_public_key_file_is_a_file_write_error(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key = KeyListing("fake", "k", b"\x01", "EC secp256r1", _uri("k", b"\x01"), der)
    with pytest.raises(FileWriteError, match="--public-key"):
        keys.write_public_key(key, tmp_path / "no-such-dir" / "k.pem")
    keys.write_public_key(key, tmp_path / "k.pem")
    assert (tmp_path / "k.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")

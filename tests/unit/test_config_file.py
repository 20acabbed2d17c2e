"""agent.toml on disk: syntax errors, comments kept, atomic writes, file modes."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from edgeagent.config import load_config, set_value, unset
from edgeagent.errors import ConfigSyntaxError, ConfigWriteError, UnknownConfigKey

COMMENTED = """\
# Agent configuration, maintained by hand and by `agent config set`.

[device]
# the key on the SoftHSM token
key_uri = "pkcs11:token=my-token;object=my-key"  # from p11tool
cert_path = "/etc/agent/device-certs/device.pem"

[mqtt.client]
# local broker
port = 1884
host = "127.0.0.1"
"""


pytestmark = pytest.mark.usefixtures("no_agent_environment")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_file_means_all_defaults(tmp_path):
    cfg = load_config(tmp_path)
    assert cfg.mqtt.client.port == 1883
    assert not (tmp_path / "agent.toml").exists()


def test_missing_config_dir_means_all_defaults(tmp_path):
    assert load_config(tmp_path / "nope").device.cryptoki.mode == "off"


def test_syntax_error_has_line_and_column(tmp_path):
    (tmp_path / "agent.toml").write_text('[device]\nkey_uri = "pkcs11:x"\nmode = = 1\n')
    with pytest.raises(ConfigSyntaxError) as caught:
        load_config(tmp_path)
    assert caught.value.line == 3
    assert caught.value.column >= 1
    assert f"agent.toml:3:{caught.value.column}" in str(caught.value)


def test_syntax_error_blocks_set_and_nothing_is_overwritten(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[device\nkey_uri = 1\n")
    before = digest(path)
    with pytest.raises(ConfigSyntaxError) as caught:
        set_value(tmp_path, "mqtt.client.port", "1884")
    assert caught.value.line == 1
    assert digest(path) == before
    with pytest.raises(ConfigSyntaxError):
        unset(tmp_path, "device.key_uri")
    assert digest(path) == before


def test_unknown_key_in_the_file_is_named(tmp_path):
    (tmp_path / "agent.toml").write_text("[device.cryptoki]\nmodul_path = '/x.so'\n")
    with pytest.raises(UnknownConfigKey) as caught:
        load_config(tmp_path)
    assert "device.cryptoki.modul_path" in str(caught.value)
    assert "device.cryptoki.module_path" in str(caught.value)  # did you mean


def test_set_keeps_comments_and_order(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(COMMENTED)
    set_value(tmp_path, "mqtt.client.port", "1885")
    set_value(tmp_path, "device.cryptoki.mode", "module")
    set_value(tmp_path, "c8y.url", "example.cumulocity.com")
    text = path.read_text()
    # Every original line survives, in its order; only the port line changed.
    remaining = iter(text.splitlines())
    for line in COMMENTED.replace("port = 1884", "port = 1885").splitlines():
        assert line in remaining, line
    assert '[device.cryptoki]\nmode = "module"\n\n[mqtt.client]' in text
    assert text.endswith('[c8y]\nurl = "example.cumulocity.com"\n')
    assert load_config(tmp_path).device.cryptoki.mode == "module"


def test_unset_keeps_comments_and_order(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(COMMENTED)
    assert unset(tmp_path, "mqtt.client.port") is True
    assert path.read_text() == COMMENTED.replace("port = 1884\n", "")
    assert load_config(tmp_path).mqtt.client.port == 1883


def test_set_then_unset_round_trips_the_other_lines(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(COMMENTED)
    set_value(tmp_path, "device.key_path", "/etc/agent/device.key")
    unset(tmp_path, "device.key_path")
    assert path.read_text() == COMMENTED


def test_set_in_dotted_key_style(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[device]\ncryptoki.mode = "off"  # for now\n')
    set_value(tmp_path, "device.cryptoki.mode", "socket")
    assert path.read_text() == '[device]\ncryptoki.mode = "socket"  # for now\n'


def test_new_file_layout(tmp_path):
    set_value(tmp_path, "device.cryptoki.mode", "module")
    set_value(tmp_path, "mqtt.client.port", "1884")
    set_value(tmp_path, "mqtt.bridge.built_in", "false")
    assert (tmp_path / "agent.toml").read_text() == (
        '[device.cryptoki]\nmode = "module"\n\n[mqtt.client]\nport = 1884\n\n'
        "[mqtt.bridge]\nbuilt_in = false\n"
    )


def test_writes_leave_no_temp_files(tmp_path):
    for port in range(1884, 1890):
        set_value(tmp_path, "mqtt.client.port", str(port))
    unset(tmp_path, "mqtt.client.port")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.toml"]


def test_failed_write_leaves_old_file_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "agent.toml"
    path.write_text(COMMENTED)
    before = digest(path)

    def refuse(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ConfigWriteError, match="No space left"):
        set_value(tmp_path, "mqtt.client.port", "1885")
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.toml"]


def test_config_dir_is_created(tmp_path):
    config_dir = tmp_path / "etc" / "agent"
    set_value(config_dir, "mqtt.client.port", "1884")
    assert (config_dir / "agent.toml").is_file()


def test_new_file_without_pin_is_0644(tmp_path):
    set_value(tmp_path, "mqtt.client.port", "1884")
    assert mode_of(tmp_path / "agent.toml") == 0o644


def test_existing_mode_is_kept(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(COMMENTED)
    path.chmod(0o640)
    set_value(tmp_path, "mqtt.client.port", "1885")
    assert mode_of(path) == 0o640


def test_file_with_pin_is_0600(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(COMMENTED)
    path.chmod(0o644)
    set_value(tmp_path, "device.cryptoki.pin", "123456")
    assert mode_of(path) == 0o600
    set_value(tmp_path, "mqtt.client.port", "1885")  # later writes keep it private
    assert mode_of(path) == 0o600


def test_new_file_with_pin_is_0600(tmp_path):
    set_value(tmp_path, "device.cryptoki.pin", "123456")
    assert mode_of(tmp_path / "agent.toml") == 0o600


def test_pin_written_by_hand_is_fixed_to_0600_on_next_write(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[device.cryptoki]\npin = "1234"\n')
    path.chmod(0o644)
    set_value(tmp_path, "device.cryptoki.mode", "module")
    assert mode_of(path) == 0o600


def test_readable_pin_file_is_warned_about(tmp_path, caplog):
    path = tmp_path / "agent.toml"
    path.write_text('[device.cryptoki]\npin = "1234"\n')
    path.chmod(0o644)
    load_config(tmp_path)
    assert "chmod 600" in caplog.text
    assert "1234" not in caplog.text


def test_symlinked_file_stays_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "agent.toml").write_text(COMMENTED)
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "agent.toml").symlink_to(real / "agent.toml")
    set_value(config_dir, "mqtt.client.port", "1885")
    assert (config_dir / "agent.toml").is_symlink()
    assert "port = 1885" in (real / "agent.toml").read_text()


def test_unset_of_the_last_key_removes_its_empty_tables(tmp_path):
    path = tmp_path / "agent.toml"
    set_value(tmp_path, "c8y.url", "example.cumulocity.com")
    set_value(tmp_path, "device.cryptoki.mode", "module")
    set_value(tmp_path, "mqtt.client.port", "1884")
    unset(tmp_path, "device.cryptoki.mode")
    assert path.read_text() == (
        '[c8y]\nurl = "example.cumulocity.com"\n\n[mqtt.client]\nport = 1884\n'
    )
    unset(tmp_path, "mqtt.client.port")
    unset(tmp_path, "c8y.url")
    assert path.read_text() == ""


def test_unset_keeps_a_table_that_still_holds_something(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(
        '[device]\n# the key on the token\n\n[device.cryptoki]\nmode = "module"\n'
        '[mqtt.client]\nhost = "h"\nport = 1884\n'
        '[c8y.device]\nkey_uri = "pkcs11:token=t"\n'
    )
    unset(tmp_path, "device.cryptoki.mode")  # [device] keeps its comment
    unset(tmp_path, "mqtt.client.port")  # host is still there
    unset(tmp_path, "c8y.device.key_uri")  # nothing left under c8y
    assert path.read_text() == ('[device]\n# the key on the token\n\n[mqtt.client]\nhost = "h"\n')


def test_unset_in_dotted_and_inline_style_leaves_no_empty_table(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[device]\ncryptoki.mode = "off"\n[mqtt]\nclient = { port = 1884 }\n')
    unset(tmp_path, "device.cryptoki.mode")
    unset(tmp_path, "mqtt.client.port")
    assert path.read_text() == ""

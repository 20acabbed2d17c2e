"""`agent config ...` argument parsing and output, through config_cmd's functions."""

from __future__ import annotations

import argparse
import io

import pytest

from edgeagent.cli import config_cmd
from edgeagent.cli.exit_codes import exit_code_for
from edgeagent.errors import AgentError

pytestmark = pytest.mark.usefixtures("no_agent_environment")


def run(tmp_path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="agent")
    parser.add_argument("--config-dir")
    config_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["--config-dir", str(tmp_path), "config", *argv])
    try:
        return int(args.run(args))
    except AgentError as error:
        return exit_code_for(error)


def test_set_get_unset(tmp_path, capsys):
    assert run(tmp_path, "set", "c8y.url", "example.cumulocity.com") == 0
    assert run(tmp_path, "get", "c8y.url") == 0
    assert capsys.readouterr().out == "example.cumulocity.com\n"
    assert run(tmp_path, "unset", "c8y.url") == 0
    assert run(tmp_path, "get", "c8y.url") == 13  # MissingConfigValue


def test_bad_value_exit_code(tmp_path):
    assert run(tmp_path, "set", "mqtt.client.port", "0") == 12
    assert run(tmp_path, "set", "mqtt.clint.port", "1") == 11


def test_list_prints_key_equals_value(tmp_path, capsys, monkeypatch):
    run(tmp_path, "set", "device.cryptoki.mode", "module")
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cr3t\n"))
    assert run(tmp_path, "set", "device.cryptoki.pin", "-") == 0
    capsys.readouterr()
    assert run(tmp_path, "list") == 0
    out = capsys.readouterr().out
    assert out == "device.cryptoki.mode=module\ndevice.cryptoki.pin=<hidden>\n"


def test_list_all_and_prefix(tmp_path, capsys):
    assert run(tmp_path, "list", "--all", "mqtt") == 0
    assert capsys.readouterr().out == (
        "mqtt.client.host=127.0.0.1\nmqtt.client.port=1883\nmqtt.bridge.built_in=true\n"
    )


def test_list_doc(tmp_path, capsys):
    assert run(tmp_path, "list", "--doc", "device.key_uri") == 0
    out = capsys.readouterr().out
    assert out.startswith("device.key_uri\n    The device's private key")
    assert (
        "    example: agent config set device.key_uri 'pkcs11:token=my-token;object=my-key'" in out
    )
    assert "    env:     AGENT_DEVICE_KEY_URI" in out
    assert "PKCS#11 URI" in out


def test_get_pin_needs_reveal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cr3t\n"))
    assert run(tmp_path, "set", "device.cryptoki.pin", "-") == 0
    capsys.readouterr()
    run(tmp_path, "get", "device.cryptoki.pin")
    captured = capsys.readouterr()
    assert captured.out == "<hidden>\n"
    assert "--reveal" in captured.err
    run(tmp_path, "get", "device.cryptoki.pin", "--reveal")
    assert capsys.readouterr().out == "s3cr3t\n"


def test_set_notes_relative_path_and_env_override(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENT_DEVICE_CERT_PATH", "/elsewhere.pem")
    assert run(tmp_path, "set", "device.cert_path", "device.pem") == 0
    err = capsys.readouterr().err
    assert f"stored device.cert_path as {tmp_path / 'device.pem'}" in err
    assert "AGENT_DEVICE_CERT_PATH is set and overrides device.cert_path" in err


def test_unset_of_absent_key_says_so(tmp_path, capsys):
    assert run(tmp_path, "unset", "c8y.url") == 0
    assert "was not set" in capsys.readouterr().err


def test_set_warns_of_a_root_ca_path_that_is_not_there_and_stores_it(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "ca.pem"
    assert run(tmp_path, "set", "c8y.root_cert_path", str(missing)) == 0
    err = capsys.readouterr().err
    assert f"warning: {missing} does not exist (yet); c8y.root_cert_path must name" in err
    assert f'root_cert_path = "{missing}"' in (tmp_path / "agent.toml").read_text()

    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    assert run(tmp_path, "set", "az.root_cert_path", str(not_pem)) == 0
    assert "holds no PEM certificate" in capsys.readouterr().err

    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMII...\n-----END CERTIFICATE-----\n")
    for fine in (str(pem), str(tmp_path)):  # a file of them, or a directory
        assert run(tmp_path, "set", "c8y.root_cert_path", fine) == 0
        assert "warning" not in capsys.readouterr().err


def test_set_warns_only_for_files_the_agent_does_not_write_itself(tmp_path, capsys):
    assert run(tmp_path, "set", "device.cryptoki.module_path", "/nonexistent/libp11.so") == 0
    assert "warning: /nonexistent/libp11.so does not exist" in capsys.readouterr().err
    for key in ("device.cert_path", "run.path", "logs.path"):
        assert run(tmp_path, "set", key, str(tmp_path / "not-yet" / key)) == 0
        assert "warning" not in capsys.readouterr().err, key


def test_get_and_list_say_which_values_come_from_the_environment(tmp_path, capsys, monkeypatch):
    assert run(tmp_path, "set", "mqtt.client.host", "10.0.0.1") == 0
    capsys.readouterr()
    monkeypatch.setenv("AGENT_MQTT_CLIENT_PORT", "1999")
    assert run(tmp_path, "get", "mqtt.client.port") == 0
    got = capsys.readouterr()
    assert got.out == "1999\n"  # stdout: the value alone, for scripts
    assert "comes from AGENT_MQTT_CLIENT_PORT (environment)" in got.err
    assert run(tmp_path, "get", "mqtt.client.host") == 0
    assert capsys.readouterr().err == ""
    assert run(tmp_path, "list") == 0
    listed = capsys.readouterr()
    assert listed.out == "mqtt.client.host=10.0.0.1\nmqtt.client.port=1999\n"
    assert "from the environment, not agent.toml: mqtt.client.port (AGENT_MQTT_CLIENT_PORT)" in (
        listed.err
    )

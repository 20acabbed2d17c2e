"""The bridge host's control requests: what a peer can send, and the errors that come back."""

from __future__ import annotations

import json
from pathlib import Path

from edgeagent import errors
from edgeagent.bridge.control import error_of, error_reply, raise_for
from edgeagent.bridge.host import BridgeHost
from edgeagent.cli.exit_codes import exit_code_for


def _host(tmp_path: Path) -> BridgeHost:
    return BridgeHost(tmp_path, None, exit_code_for)


def test_a_reply_carries_the_error_class_so_the_exit_code_is_the_same() -> None:
    reply = error_reply(errors.PinIncorrect("PIN incorrect", "check c8y.device.key_pin"), 24)
    assert reply == {
        "ok": False,
        "error": "PinIncorrect",
        "message": "PIN incorrect",
        "fix": "check c8y.device.key_pin",
        "exit_code": 24,
    }
    error = error_of(reply)
    assert isinstance(error, errors.PinIncorrect) and exit_code_for(error) == 24
    assert error.fix == "check c8y.device.key_pin"


def test_an_unknown_or_odd_error_class_becomes_a_service_error() -> None:
    for name in ("NoSuchError", "Exception", "ConfigSyntaxError", "__class__"):
        error = error_of({"ok": False, "error": name, "message": "m", "fix": "f"})
        assert type(error) is errors.ServiceError, name
    assert raise_for({"ok": True, "pid": 1}) == {"ok": True, "pid": 1}


def test_malformed_requests_get_an_error_reply_never_an_exception(tmp_path: Path) -> None:
    host = _host(tmp_path)
    for body in (
        b"{not json",
        b"[]",
        b"null",
        b'"start"',
        b"{}",
        b'{"op": "format-disk"}',
        b'{"op": "start"}',
        b'{"op": "start", "plan": {"cloud": "c8y"}}',
        b'{"op": "start", "plan": []}',
        b'{"op": "stop"}',
        b"\xff\xfe",
    ):
        reply = host.answer(body)
        assert reply["ok"] is False and reply["exit_code"] == 80, (body, reply)
        assert reply["message"].startswith("bad control request"), (body, reply)


def test_a_bad_request_is_never_echoed_back(tmp_path: Path) -> None:
    plan = {"cloud": "c8y", "signer": {"mode": "module", "pin": "s3cr3t-pin"}}
    reply = _host(tmp_path).answer(json.dumps({"op": "start", "plan": plan}).encode())
    assert reply["ok"] is False
    assert "s3cr3t-pin" not in json.dumps(reply)


def test_stop_and_list_of_clouds_the_host_does_not_run(tmp_path: Path) -> None:
    host = _host(tmp_path)
    stop = host.answer(b'{"op": "stop", "cloud": "az"}')
    assert stop["ok"] is False and "does not run az" in stop["message"]
    listing = host.answer(b'{"op": "list"}')
    assert listing["ok"] is True and listing["clouds"] == {}

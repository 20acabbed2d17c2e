"""docs/signing-protocol.md states what the code does: codes, exit codes, schemes, limits."""

from __future__ import annotations

import re
from pathlib import Path

from edgeagent import errors
from edgeagent.cli.exit_codes import exit_code_for
from edgeagent.p11server import server
from edgeagent.protocol import frame
from edgeagent.protocol import messages as m
from edgeagent.protocol.schemes import SCHEMES
from edgeagent.signing import socket_signer

SPEC = (Path(__file__).parents[2] / "docs" / "signing-protocol.md").read_text()

ERROR_ROW = re.compile(r"^\| `(\w+)` \| .+ \| `(\w+)` \| (\d+) \|$", re.MULTILINE)


def test_the_error_table_is_the_codes_classes_and_exit_codes_of_the_code() -> None:
    rows = {code: (cls, int(exit_)) for code, cls, exit_ in ERROR_ROW.findall(SPEC)}
    expected = {
        code: (cls.__name__, exit_code_for(cls("x"))) for code, cls in m.ERROR_CODES.items()
    }
    assert rows == expected


def test_client_side_errors_have_the_documented_exit_codes() -> None:
    unreachable = exit_code_for(errors.SignerUnreachable("x"))
    assert f"`SignerUnreachable`, naming the socket path | {unreachable} |" in SPEC
    assert f"`SignerProtocolError` | {exit_code_for(errors.SignerProtocolError('x'))} |" in SPEC


def test_every_scheme_is_documented() -> None:
    documented = set(re.findall(r"`((?:ecdsa|rsa)_\w+)`", SPEC))
    assert set(SCHEMES) <= documented


def test_the_limits_are_the_codes() -> None:
    assert frame.MAX_FRAME == 65536 and "1 <= length <= 65536 (MAX_FRAME)" in SPEC
    assert f"| {server.IDLE_TIMEOUT:.0f} s idle |" in SPEC
    assert f"| {server.FRAME_TIMEOUT:.0f} s from its first byte |" in SPEC
    assert f"| {socket_signer.REQUEST_TIMEOUT:.0f} s:" in SPEC
    assert f"at most {server.MAX_CLIENTS} connections" in SPEC
    assert f"most {server.MAX_CLIENTS_PER_UID} of them from one uid" in SPEC
    assert f"| no byte at all for {server.HELLO_TIMEOUT:.0f} s after" in SPEC
    assert f"at most once per uid per\n   {server.REFUSAL_LOG_INTERVAL:.0f} s" in SPEC
    assert f"when {server.MAX_LINGERING} refusals" in SPEC
    assert f"(at most {m.MAX_ERROR_TEXT} characters" in SPEC
    assert f"for up to {server.LINGER_TIMEOUT:.0f} s" in SPEC
    assert m.VERSIONS == (1,)

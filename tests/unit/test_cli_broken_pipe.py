"""A broken pipe is "the reader of stdout left" only when stdout's reader left.

`agent connect` once exited 0 when the cloud reset the TLS connection: the
BrokenPipeError came from the socket, and the CLI took it for `| head`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from edgeagent.cli import main as cli_main
from tests.support.agent_cli import AGENT


def _parser_whose_command_raises(error: BaseException) -> argparse.ArgumentParser:
    def run(_args: argparse.Namespace) -> int:
        raise error

    parser = argparse.ArgumentParser(prog="agent")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("boom").set_defaults(run=run)
    return parser


def test_a_broken_pipe_elsewhere_is_a_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = _parser_whose_command_raises(BrokenPipeError(32, "Broken pipe"))
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    code = cli_main.main(["boom"])
    assert code != 0
    assert "closed unexpectedly" in capsys.readouterr().err


def test_the_reader_of_stdout_leaving_is_not_an_error() -> None:
    # A real pipe whose reader is gone, as `agent config list --doc | head -c 1` makes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    done = subprocess.run(
        [AGENT, "config", "list", "--doc"],
        stdout=write_end,
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_stdout_reader_gone_sees_a_closed_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        assert cli_main._stdout_reader_gone() is False
        os.close(read_end)
        assert cli_main._stdout_reader_gone() is True

"""`agent`: the command line. Parses, calls one function, prints.

Each command group lives in its own module exposing ``register(subparsers)``;
the function a command runs is set with ``set_defaults(run=...)`` and takes
the parsed ``argparse.Namespace``, returning an exit code. Our errors are
printed as ``error: <cause>`` plus ``  fix: <fix>`` on stderr and exit with
the code from :mod:`edgeagent.cli.exit_codes`. What the parsers share (no
abbreviations, the cloud, old spellings that still work) is :mod:`edgeagent.cli.args`.
The command modules are imported inside ``build_parser`` and the exit-code table
only on an error: `agent config get` is on a fast path.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
from collections.abc import Sequence
from typing import Any

from edgeagent.cli.args import AgentParser, resolve_renamed
from edgeagent.errors import AgentError


def build_parser() -> argparse.ArgumentParser:
    from edgeagent.cli import (
        bridge_cmd,
        cert_cmd,
        config_cmd,
        connect_cmd,
        doctor_cmd,
        hsm_cmd,
        p11_server_cmd,
        status_cmd,
    )

    parser = AgentParser(
        prog="agent",
        description="Edge agent: connect this device to the cloud with a key held on a token.",
        epilog="example:\n  agent connect c8y\n\n`agent COMMAND --help` shows each command.",
    )
    parser.add_argument(
        "--config-dir",
        metavar="DIR",
        help="directory holding agent.toml (default: $AGENT_CONFIG_DIR or /etc/agent)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action=_PrintVersion, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    config_cmd.register(sub)
    connect_cmd.register(sub)
    status_cmd.register(sub)
    bridge_cmd.register(sub)
    p11_server_cmd.register(sub)
    doctor_cmd.register(sub)
    hsm_cmd.register(sub)
    cert_cmd.register(sub)
    return parser


class _PrintVersion(argparse.Action):
    """``agent --version``: ``agent 0.1.0``, exit 0. The package metadata is read only
    when asked (importlib.metadata is not free on every command's start)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"agent {package_version()}")
        parser.exit(0)


def package_version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgeagent")
    except PackageNotFoundError:
        from edgeagent import __version__

        return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_renamed(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from edgeagent.cli.exit_codes import exit_code_for

    try:
        code: int = args.run(args)
    except AgentError as error:
        print(f"error: {error}", file=sys.stderr)
        # What the command did about it (e.g. reconnect: the running bridge was left alone).
        for note in getattr(error, "__notes__", ()):
            print(f"  note: {note}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError as error:
        if not _stdout_reader_gone():
            # A pipe of ours broke (a socket, a child): a failure, never a success.
            print(f"error: a connection closed unexpectedly: {error}", file=sys.stderr)
            return exit_code_for(AgentError(str(error)))
        # `agent config list --doc | head`: the reader left; that is not an error.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe or socket whose reader has closed (poll says POLLERR)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())

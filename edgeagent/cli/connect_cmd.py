"""`agent connect|reconnect|disconnect <cloud>`.

The cloud layer is imported inside each command: building the parser stays light.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from edgeagent.cli.args import Subparsers, add_cloud, add_command, config_dir_from


class ConsoleProgress:
    """Prints each step as `label... ✓` (or ✗) and details as `  name: value`."""

    def __init__(self, out: object = None) -> None:
        self._out = out or sys.stdout

    def detail(self, name: str, value: str) -> None:
        print(f"    {name}: {value}", file=self._out, flush=True)  # type: ignore[arg-type]

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        print(f"{label}...", end=" ", file=self._out, flush=True)  # type: ignore[arg-type]
        try:
            yield
        except BaseException:
            print("✗", file=self._out, flush=True)  # type: ignore[arg-type]
            raise
        print("✓", file=self._out, flush=True)  # type: ignore[arg-type]


def _connect(args: argparse.Namespace) -> int:
    from edgeagent.clouds.connect import connect

    print(f"Connecting to {args.cloud}:")
    connect(config_dir_from(args), args.cloud, ConsoleProgress())
    return 0


def _disconnect(args: argparse.Namespace) -> int:
    from edgeagent.clouds.connect import disconnect

    disconnect(config_dir_from(args), args.cloud, ConsoleProgress())
    return 0


def _reconnect(args: argparse.Namespace) -> int:
    from edgeagent.clouds.connect import reconnect

    print(f"Reconnecting to {args.cloud}:")
    reconnect(config_dir_from(args), args.cloud, ConsoleProgress())
    return 0


def register(sub: Subparsers) -> None:
    for name, run, text in (
        ("connect", _connect, "check the device's key and certificate, then start the bridge"),
        ("disconnect", _disconnect, "stop the bridge to a cloud"),
        (
            "reconnect",
            _reconnect,
            "run connect's checks, then restart the bridge (a failed check leaves it running)",
        ),
    ):
        parser = add_command(sub, name, text, example=f"agent {name} c8y")
        add_cloud(parser)
        parser.set_defaults(run=run)

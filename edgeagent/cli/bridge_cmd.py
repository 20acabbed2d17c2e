"""`agent bridge run <cloud>`: the bridge in the foreground (systemd, containers)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from edgeagent.cli.main import config_dir_from


def _run(args: argparse.Namespace) -> int:
    from edgeagent.clouds.connect import run_bridge

    logging.getLogger("edgeagent").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run_bridge(config_dir_from(args), args.cloud, stop, args.pid_file)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bridge = sub.add_parser("bridge", help="run the built-in bridge")
    actions = bridge.add_subparsers(dest="bridge_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help="run the bridge in the foreground until SIGTERM",
        description="Run the bridge between the local broker and a cloud in the foreground "
        "(for systemd's ExecStart and containers). `agent connect` starts it for you.",
    )
    run.add_argument("cloud", choices=("c8y",))
    run.add_argument("--pid-file", type=Path, help="hold this pid file (locked) while running")
    run.set_defaults(run=_run)

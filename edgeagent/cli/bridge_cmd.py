"""`agent bridge run <cloud>`: the bridge in the foreground (systemd, containers)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeagent.cli.main import config_dir_from


def _run(args: argparse.Namespace) -> int:
    from edgeagent.bridge.runtime import exec_runtime
    from edgeagent.clouds.connect import bridge_plan

    # Validate with the full schema here, then become the lean runtime
    # (same pid) that runs all day without the configuration layer loaded.
    exec_runtime(bridge_plan(config_dir_from(args), args.cloud), args.pid_file)


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

"""`agent bridge run <cloud>`: the bridge in the foreground (systemd, containers).

The bridge and cloud layers are imported inside ``_run``: building the parser stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeagent.cli.args import Subparsers, add_cloud, add_command, config_dir_from


def _run(args: argparse.Namespace) -> int:
    from edgeagent.bridge.runtime import exec_runtime
    from edgeagent.clouds.connect import bridge_plan
    from edgeagent.lean_exec import keep_secrets_out_of_dumps

    keep_secrets_out_of_dumps()  # the configuration we read next holds the PIN
    # Validate with the full schema here, then become the lean runtime
    # (same pid) that runs all day without the configuration layer loaded.
    exec_runtime(bridge_plan(config_dir_from(args), args.cloud), args.pid_file)


def register(sub: Subparsers) -> None:
    bridge = add_command(sub, "bridge", "run the built-in bridge", example="agent bridge run c8y")
    actions = bridge.add_subparsers(dest="bridge_command", metavar="ACTION", required=True)
    run = add_command(
        actions,
        "run",
        "run the bridge in the foreground until SIGTERM",
        example="agent bridge run c8y --pid-file /run/agent/bridge-c8y.pid",
        description="Run the bridge between the local broker and a cloud in the foreground "
        "(for systemd's ExecStart and containers). `agent connect` starts it for you.",
    )
    add_cloud(run)
    run.add_argument(
        "--pid-file", type=Path, metavar="FILE", help="hold this pid file (locked) while running"
    )
    run.set_defaults(run=_run)

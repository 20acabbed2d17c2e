"""`agent bridge run <cloud>` and `agent bridge host`: bridges in the foreground.

``bridge run c8y`` runs one cloud's bridge in this process (containers);
``bridge host`` runs the bridge host with every connected cloud (systemd's
agent-bridge.service, containers), which `agent connect` then talks to.

The bridge and cloud layers are imported inside ``_run``: building the parser stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeagent.cli.args import Subparsers, add_cloud, add_command, config_dir_from


def _run(args: argparse.Namespace) -> int:
    from edgeagent.bridge.holder import already_running
    from edgeagent.bridge.runtime import exec_host, exec_runtime
    from edgeagent.bridge.service import BridgeService
    from edgeagent.clouds.connect import bridge_plan
    from edgeagent.config import load_config
    from edgeagent.lean_exec import keep_secrets_out_of_dumps

    keep_secrets_out_of_dumps()  # the configuration we read next holds the PIN
    config_dir = config_dir_from(args)
    config = load_config(config_dir)
    service = BridgeService.of(args.cloud, config_dir, config)
    pid_file = args.pid_file or service.pid_file
    # One bridge per cloud: refused here before the token is opened; the
    # runtime's lock on the pid file refuses a start that races this one.
    running = service.running_pid()
    if running is not None and pid_file == service.pid_file and not args.restart:
        raise already_running(service.pid_file, running if running > 0 else None)
    plan = bridge_plan(config_dir, args.cloud)
    # Validated with the full schema here; the lean runtime (same pid) runs
    # all day without the configuration layer loaded.
    if args.host:
        join = service.manager == "systemd"
        exec_host(plan, config.run.path, config.logs.path, join=join, restart=args.restart)
    exec_runtime(plan, pid_file)


def _host(args: argparse.Namespace) -> int:
    import sys

    from edgeagent.bridge import connected
    from edgeagent.bridge.runtime import exec_host_foreground
    from edgeagent.cli.exit_codes import exit_code_for
    from edgeagent.clouds.connect import bridge_plan
    from edgeagent.config import load_config
    from edgeagent.errors import AgentError
    from edgeagent.lean_exec import keep_secrets_out_of_dumps

    keep_secrets_out_of_dumps()  # the configuration we read next holds the PIN
    config_dir = config_dir_from(args)
    config = load_config(config_dir)
    plans = []
    failures: list[AgentError] = []
    for cloud in connected.names(config_dir):
        # One cloud's broken configuration never keeps the others offline.
        try:
            plans.append(bridge_plan(config_dir, cloud))
        except AgentError as error:
            print(f"error: {cloud} not started: {error}", file=sys.stderr)
            failures.append(error)
    if failures and not plans:
        # Connected clouds, none of which can start: a failure (systemd shows
        # it and RestartPreventExitStatus= applies), never a clean exit.
        return exit_code_for(failures[0])
    exec_host_foreground(plans, config.run.path)


def register(sub: Subparsers) -> None:
    bridge = add_command(sub, "bridge", "run the built-in bridge", example="agent bridge run c8y")
    actions = bridge.add_subparsers(dest="bridge_command", metavar="ACTION", required=True)
    run = add_command(
        actions,
        "run",
        "run the bridge in the foreground until SIGTERM",
        example="agent bridge run c8y",
        description="Run the bridge between the local broker and a cloud in the foreground "
        "(for systemd's ExecStart and containers), holding run.path/bridge-<cloud>.pid: "
        "a second bridge for the same cloud is refused (exit 81). "
        "`agent connect` starts it for you.",
    )
    add_cloud(run)
    run.add_argument(
        "--pid-file",
        type=Path,
        metavar="FILE",
        help="hold this pid file (locked) while running (default: run.path/bridge-<cloud>.pid)",
    )
    # `agent connect`'s way in (edgeagent/bridge/service.py): the cloud runs in
    # the bridge host, which serves every connected cloud from one process.
    run.add_argument("--host", action="store_true", help=argparse.SUPPRESS)
    # `agent reconnect`: the host stops the running bridge and starts the new plan.
    run.add_argument("--restart", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(run=_run)
    host = add_command(
        actions,
        "host",
        "run the bridge host with every connected cloud in the foreground until SIGTERM",
        example="agent bridge host",
        description="Run the bridge host in the foreground: one process with a bridge for "
        "each connected cloud (<config dir>/connected-clouds), which `agent connect` and "
        "`agent disconnect` start and stop over run.path/bridge.sock. For systemd's "
        "agent-bridge.service and containers' entry point; it exits when its last cloud "
        "is disconnected.",
    )
    host.set_defaults(run=_host)

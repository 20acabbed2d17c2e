"""`agent p11-server`: the signing service (socket mode's other half).

The service is imported inside ``_run``: building the parser stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeagent.cli.args import Subparsers, add_command, add_renamed, config_dir_from


def _run(args: argparse.Namespace) -> int:
    from edgeagent.config import load_config
    from edgeagent.lean_exec import keep_secrets_out_of_dumps
    from edgeagent.p11server.run import ServerSettings, exec_runtime

    keep_secrets_out_of_dumps()  # the configuration we read next holds the PIN
    settings = ServerSettings.from_config(
        load_config(config_dir_from(args)),
        module_path=args.module_path,
        uri=args.token_uri,
        socket_path=args.socket_path,
        socket_group=args.socket_group,
        allowed_users=args.allow_users,
        allowed_groups=args.allow_groups,
    )
    exec_runtime(settings, args.verbose)


def register(sub: Subparsers) -> None:
    parser = add_command(
        sub,
        "p11-server",
        "serve the token's key to the agent over a Unix socket",
        example="agent --config-dir /etc/agent-p11-server p11-server --allow-users agent",
        description=(
            "Run the signing service: it loads the PKCS#11 module, logs in with "
            "device.cryptoki.pin and signs for allowed local users over a Unix socket "
            "(device.cryptoki.socket_path). Accepts a socket from systemd socket "
            "activation. The PIN comes from the configuration or AGENT_DEVICE_CRYPTOKI_PIN, "
            "never from the command line, where other users could read it."
        ),
    )
    parser.add_argument(
        "--module-path", type=Path, metavar="FILE", help="default: device.cryptoki.module_path"
    )
    parser.add_argument(
        "--token-uri", metavar="URI", help="token (or key) to serve; default: device.cryptoki.uri"
    )
    add_renamed(parser, "--uri", "--token-uri")
    parser.add_argument(
        "--socket-path", type=Path, metavar="FILE", help="default: device.cryptoki.socket_path"
    )
    parser.add_argument("--socket-group", metavar="GROUP", help="default: p11_server.socket_group")
    parser.add_argument("--allow-users", metavar="USERS", help="default: p11_server.allowed_users")
    parser.add_argument(
        "--allow-groups", metavar="GROUPS", help="default: p11_server.allowed_groups"
    )
    parser.set_defaults(run=_run)

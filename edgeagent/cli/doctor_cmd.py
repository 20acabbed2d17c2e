"""`agent doctor <cloud>`: check every link from the configuration to the cloud.

The cloud layer is imported inside ``_run``: building the parser stays light.
"""

from __future__ import annotations

import argparse

from edgeagent.cli.args import Subparsers, add_cloud, add_command, config_dir_from


def _run(args: argparse.Namespace) -> int:
    from edgeagent.cli.exit_codes import exit_code_for
    from edgeagent.clouds.doctor import diagnose

    print(f"Checking the connection to {args.cloud}:")
    skipped = 0
    for result in diagnose(config_dir_from(args), args.cloud):
        if result.skipped:
            print(f"  - {result.label}: not checked: {result.detail}")
            skipped += 1
            continue
        if result.ok:
            print(f"  ✓ {result.label}" + (f": {result.detail}" if result.detail else ""))
            continue
        assert result.error is not None
        print(f"  ✗ {result.label}")
        print(f"    error: {result.error.cause}")
        if result.error.fix:
            print(f"    fix: {result.error.fix}")
        return exit_code_for(result.error)
    print("All checks passed." if not skipped else f"All checks passed; {skipped} not checked.")
    return 0


def register(sub: Subparsers) -> None:
    parser = add_command(
        sub,
        "doctor",
        "check config, token, key, certificate and the cloud, one line per step",
        example="agent doctor c8y",
        description="Walk the chain from the configuration to the cloud: configuration, "
        "module, token, login, key (found and unique), certificate (matches the key, "
        "valid now), bridge rules, DNS, the TLS handshake as the device (no MQTT CONNECT: "
        "that would take the bridge's cloud session), then, when the bridge runs, its "
        "MQTT connection and a round trip through it. Exit 0 only when all pass; "
        "otherwise the exit code of the first failure.",
    )
    add_cloud(parser)
    parser.set_defaults(run=_run)

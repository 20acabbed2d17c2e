"""`agent doctor <cloud>`: check every link from the configuration to the cloud."""

from __future__ import annotations

import argparse

from edgeagent.cli.main import config_dir_from


def _run(args: argparse.Namespace) -> int:
    from edgeagent.cli.exit_codes import exit_code_for
    from edgeagent.clouds.doctor import diagnose

    print(f"Checking the connection to {args.cloud}:")
    for result in diagnose(config_dir_from(args), args.cloud):
        if result.ok:
            print(f"  ✓ {result.label}" + (f": {result.detail}" if result.detail else ""))
            continue
        assert result.error is not None
        print(f"  ✗ {result.label}")
        print(f"    error: {result.error.cause}")
        if result.error.fix:
            print(f"    fix: {result.error.fix}")
        return exit_code_for(result.error)
    print("All checks passed.")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check config, token, key, certificate and the cloud, one line per step",
        description="Walk the chain from the configuration to the cloud: configuration, "
        "module, token, login, key (found and unique), certificate (matches the key, "
        "valid now), DNS, TLS handshake and MQTT CONNACK. Exit 0 only when all pass; "
        "otherwise the exit code of the first failure.",
    )
    parser.add_argument("cloud", choices=("c8y",))
    parser.set_defaults(run=_run)

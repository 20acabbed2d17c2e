"""`agent status [CLOUD] [--json]`: what each cloud's bridge is doing, one block per cloud.

The cloud layer is imported inside ``_run``: building the parser stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from edgeagent.cli.args import CLOUD_NAMES, Subparsers, add_command, config_dir_from

if TYPE_CHECKING:
    from edgeagent.bridge.status_file import LinkStatus
    from edgeagent.clouds.status import CloudStatus


def _run(args: argparse.Namespace) -> int:
    from edgeagent.cli.exit_codes import exit_code_for
    from edgeagent.clouds.status import gather

    report = gather(config_dir_from(args), args.cloud)
    error = report.exit_error()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for cloud in report.clouds:
            _print_cloud(cloud)
    if error is None:
        return 0
    print(f"error: {error}", file=sys.stderr)
    return exit_code_for(error)


def _print_cloud(cloud: CloudStatus) -> None:
    from edgeagent.clouds.status import human_time

    if not cloud.configured:
        print(f"{cloud.cloud} ({cloud.title}): not configured ({cloud.cloud}.url is not set)")
        if not cloud.process.running:
            return
        print("    (but a bridge for it runs: `agent disconnect` stops it)")
    else:
        print(f"{cloud.cloud} ({cloud.title}): {'up' if cloud.up else 'DOWN'}")
    process, status = cloud.process, cloud.status
    if process.running:
        how = {
            "systemd": f"systemd unit {process.unit}",
            "pid file": f"pid file {process.pid_file}",
            "foreground": "in the foreground, no pid file",
        }.get(process.managed_by or "", "")
        pid = f", pid {process.pid}" if process.pid is not None else ""
        since = f" since {human_time(status.started_at)}" if cloud.current and status else ""
        print(f"    bridge: running{pid}{since} ({how})")
    elif cloud.last_ran_until is not None and status is not None:
        ended = "stopped" if status.stopped_at is not None else "ended without stopping"
        until = human_time(cloud.last_ran_until)
        print(f"    bridge: not running (last ran until {until}, {ended})")
    else:
        print("    bridge: not running (never started here)")
    if cloud.status_error:
        print(f"    status file: {cloud.status_error}")
    if status is None:
        return
    last = "" if cloud.current else "last "
    print(f"    {last}cloud link: {link_line(status.cloud_link)}")
    print(f"    {last}local link: {link_line(status.local_link)}")
    c = status.counters
    print(
        f"    forwarded: {c.forwarded.to_cloud} to the cloud, {c.forwarded.to_local} to the "
        f"gateway; in flight: {c.in_flight.to_cloud} to the cloud, {c.in_flight.to_local} "
        "to the gateway"
    )
    dropped = c.dropped
    if dropped.oversize or dropped.no_rule or dropped.qos0_link_down:
        print(
            f"    dropped: {dropped.oversize} over the size limit, {dropped.no_rule} "
            f"without a rule, {dropped.qos0_link_down} at QoS 0 while a link was down"
        )
    print(f"    device id: {status.device_id}")
    print(f"    key: {status.key_uri}")


def link_line(link: LinkStatus) -> str:
    """A link as `agent status` prints it: up or down since when, and its last error."""
    from edgeagent.clouds.status import human_time

    text = "up" if link.up else "down"
    if link.since is not None:
        text += f" since {human_time(link.since)}"
    if link.tls_version:
        text += f", {link.tls_version}"
    if link.last_error:
        at = f" at {human_time(link.last_error_at)}" if link.last_error_at else ""
        # An error from before the link came up is history, said as such.
        past = link.up and link.since is not None and (link.last_error_at or 0) <= link.since
        text += f"; {'recovered from an error' if past else 'last error'}{at}: {link.last_error}"
    return text


def register(sub: Subparsers) -> None:
    parser = add_command(
        sub,
        "status",
        "show what each cloud's bridge is doing: links, errors, counters, key",
        example="agent status\nagent status c8y --json",
        description="For each cloud (or CLOUD): configured or not, the bridge running or not "
        "(pid, since when, systemd unit or pid file), the cloud and local links (up or down, "
        "the last error and when, the TLS version), messages forwarded and in flight each "
        "way, and the key in use. Exit 0 only when every configured cloud is up; --json "
        "prints the schema documented in the README.",
    )
    parser.add_argument(
        "cloud",
        nargs="?",
        choices=CLOUD_NAMES,
        metavar="CLOUD",
        help="only this cloud, one of: %(choices)s (default: every cloud the agent knows)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=_run)

"""The bridge's lean runtime: `agent bridge run` execs into this, same pid.

Not a command for users: it reads its plan from an inherited pipe
(``--payload-fd``, see `edgeagent.lean_exec`). It imports neither the
configuration layer nor paho.

- ``--pid-file FILE``: one cloud in the foreground (`agent bridge run c8y`:
  systemd's ExecStart, containers), logging to stderr.
- ``--serve RUN_DIR``: the bridge host in the foreground with the plans of
  the connected clouds (`agent bridge host`: systemd, containers), logging to
  stderr (the journal).
- ``--host RUN_DIR --log-dir DIR [--join]``: start the cloud in the bridge
  host (`agent connect`): hand the plan to the running host over its control
  socket, or become the host when none runs (never with ``--join``: under
  systemd the unit is the host); ``--restart``: the host stops the cloud's
  running bridge first, under the cloud's lock (`agent reconnect`). The
  start's reply is one JSON line on stdout; then stdout and stderr are let
  go (the caller waits for their end), and the host logs to one file per
  cloud (edgeagent/bridge/logs.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from edgeagent.errors import AgentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent bridge run (runtime)", allow_abbrev=False)
    parser.add_argument("--payload-fd", type=int, required=True)
    parser.add_argument("--pid-file", type=Path)
    parser.add_argument("--host", type=Path, metavar="RUN_DIR")
    parser.add_argument("--log-dir", type=Path)
    parser.add_argument("--serve", type=Path, metavar="RUN_DIR")
    parser.add_argument("--join", action="store_true")
    parser.add_argument("--restart", action="store_true")
    args = parser.parse_args(argv)
    from edgeagent.bridge.logs import log_to_stream
    from edgeagent.bridge.runtime import read_plan, read_plans
    from edgeagent.cli.exit_codes import NEVER_RETRY, exit_code_for
    from edgeagent.lean_exec import keep_secrets_out_of_dumps, stop_on_signals

    keep_secrets_out_of_dumps()  # before the payload, which holds the PIN
    stop = stop_on_signals()
    try:
        if args.serve is not None:
            from edgeagent.bridge.host_start import serve_in_foreground

            log_to_stream(sys.stderr)
            return serve_in_foreground(
                read_plans(args.payload_fd), args.serve, stop, exit_code_for, NEVER_RETRY
            )
        plan = read_plan(args.payload_fd)
        if args.host is None:
            from edgeagent.bridge.cloud_run import run_foreground

            log_to_stream(sys.stderr)
            if args.pid_file is None:
                parser.error("--pid-file or --host is required")
            error = run_foreground(plan, args.pid_file, stop)
            if error is not None:
                raise error
            return 0
        from edgeagent.bridge.host_start import start_in_host

        # Logs go to stderr (the caller) until this process is the host; the
        # detached host's stdio is a pipe to `agent connect`, never the journal.
        log_to_stream(sys.stderr)
        # With --join (systemd: the unit is the host) this process only asks and
        # exits: it never writes into the unit user's log directory.
        log_dir = None if args.join else args.log_dir
        return start_in_host(
            plan,
            args.host,
            log_dir,
            stop,
            exit_code_for,
            lambda r: _report(r, log_dir),
            may_host=not args.join,
            op="restart" if args.restart else "start",
        )
    except AgentError as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_code_for(error)


def _report(reply: dict[str, Any], log_dir: Path | None) -> None:
    """The start's reply on stdout; then stdio is no longer the caller's.

    Raises OSError when the caller is gone (it gave up waiting); stdio is
    let go all the same, so the host never writes to a closed pipe again.
    """
    try:
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    finally:
        if log_dir is not None:
            _let_go_of_stdio(log_dir)


def _let_go_of_stdio(log_dir: Path) -> None:
    from edgeagent.bridge.logs import HOST, log_file_for
    from edgeagent.safe_files import open_no_follow

    null = os.open(os.devnull, os.O_RDWR)
    # Python's last words (a fatal error, an unhandled thread exception) go to
    # the host's log; the records themselves go through logging (logs.py).
    host_log = open_no_follow(
        log_file_for(log_dir, HOST), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640
    )
    with contextlib.suppress(OSError):  # the caller's pipe, maybe closed
        sys.stderr.flush()
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(host_log, 2)
    os.close(null)
    os.close(host_log)


if __name__ == "__main__":
    sys.exit(main())

"""The bridge's lean runtime: `agent bridge run` execs into this, same pid.

Not a command for users: it reads its plan from an inherited pipe
(``--payload-fd``, see `edgeagent.lean_exec`). It imports neither the
configuration layer nor paho.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from edgeagent.errors import AgentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent bridge run (runtime)")
    parser.add_argument("--payload-fd", type=int, required=True)
    parser.add_argument("--pid-file", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    from edgeagent.bridge.pidfile import hold_pid_file
    from edgeagent.bridge.runtime import read_plan, run_plan
    from edgeagent.lean_exec import keep_secrets_out_of_dumps, stop_on_signals

    keep_secrets_out_of_dumps()  # before the payload, which holds the PIN
    stop = stop_on_signals()
    plan = read_plan(args.payload_fd)
    holding: AbstractContextManager[object] = (
        nullcontext() if args.pid_file is None else hold_pid_file(args.pid_file)
    )
    try:
        with holding:
            run_plan(plan, stop)
    except AgentError as error:
        from edgeagent.cli.exit_codes import exit_code_for

        print(f"error: {error}", file=sys.stderr)
        return exit_code_for(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())

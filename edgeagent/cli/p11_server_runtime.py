"""The signing service's lean runtime: `agent p11-server` execs into this, same pid.

Not a command for users: it reads its settings (the PIN among them) from an
inherited pipe (``--payload-fd``, see `edgeagent.lean_exec`). It never
imports the configuration layer.
"""

from __future__ import annotations

import argparse
import logging
import sys

from edgeagent.errors import AgentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent p11-server (runtime)")
    parser.add_argument("--payload-fd", type=int, required=True)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("edgeagent").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from edgeagent.lean_exec import keep_secrets_out_of_dumps, read_payload, stop_on_signals
    from edgeagent.p11server.run import ServerSettings, serve

    keep_secrets_out_of_dumps()  # before the payload, which holds the PIN
    stop = stop_on_signals()
    try:
        serve(ServerSettings.from_json(read_payload(args.payload_fd)), stop)
    except AgentError as error:
        from edgeagent.cli.exit_codes import exit_code_for

        print(f"error: {error}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

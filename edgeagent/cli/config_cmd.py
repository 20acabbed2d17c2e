"""`agent config get|set|unset|list`: parse, call edgeagent.config, print.

``edgeagent.config`` (pydantic, tomlkit) is imported inside each command, not
at module level, so building the parser for other commands stays cheap.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.cli.args import Subparsers, add_command, config_dir_from
from edgeagent.cli.exit_codes import OK
from edgeagent.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from edgeagent.config import ConfigEntry

HIDDEN = "<hidden>"


def register(subparsers: Subparsers) -> None:
    config = add_command(
        subparsers,
        "config",
        "read and change agent.toml",
        example="agent config set device.cryptoki.mode module",
        description="Read and change the configuration (agent.toml). Every key can also be "
        "set through an environment variable: AGENT_ + the key upper-cased with dots "
        "as underscores (device.cryptoki.pin -> AGENT_DEVICE_CRYPTOKI_PIN); an empty "
        "variable counts as unset.",
    )
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    get = add_command(
        actions, "get", "print a key's effective value", example="agent config get device.key_uri"
    )
    get.add_argument("key", metavar="KEY")
    get.add_argument("--reveal", action="store_true", help="print a secret (the PIN) in clear")
    get.set_defaults(run=run_get)

    set_ = add_command(
        actions,
        "set",
        "validate and store a value",
        example="agent config set c8y.url example.cumulocity.com",
    )
    set_.add_argument("key", metavar="KEY")
    set_.add_argument(
        "value",
        metavar="VALUE",
        nargs="?",
        help="the value; - reads it from standard input. A secret (a PIN) is never taken "
        "here: leave it out to type it at a prompt without echo, or give - or --from-file",
    )
    set_.add_argument(
        "--from-file", type=Path, metavar="FILE", help="read the value from FILE (e.g. a PIN)"
    )
    set_.set_defaults(run=run_set)

    unset = add_command(
        actions,
        "unset",
        "remove a key from agent.toml (back to default)",
        example="agent config unset c8y.device.key_uri",
    )
    unset.add_argument("key", metavar="KEY")
    unset.set_defaults(run=run_unset)

    list_ = add_command(
        actions,
        "list",
        "print keys and values, or their documentation",
        example="agent config list device.cryptoki --doc",
    )
    list_.add_argument(
        "prefix",
        metavar="PREFIX",
        nargs="?",
        default="",
        help="only keys under this section, e.g. device.cryptoki",
    )
    list_.add_argument(
        "--doc",
        action="store_true",
        help="print each key's meaning, example and environment variable",
    )
    list_.add_argument("--all", action="store_true", help="include keys left at their default")
    list_.set_defaults(run=run_list)


def run_get(args: argparse.Namespace) -> int:
    from edgeagent.config.quick import quick_get

    # Without pydantic when the answer is certain; else the full path.
    value = quick_get(config_dir_from(args), args.key, reveal=args.reveal)
    if value is None:
        from edgeagent.config import get

        value = get(config_dir_from(args), args.key, reveal=args.reveal)
    print(value)
    if value == HIDDEN and not args.reveal:
        print(f"note: {args.key} is secret; add --reveal to print it", file=sys.stderr)
    _note_from_environment(args.key)
    return OK


def _note_from_environment(key: str) -> None:
    """Say on stderr that ``key``'s value is the environment's (stdout holds the value only)."""
    from edgeagent.config.keytable import KEYS

    row = KEYS.get(key)
    if row is not None and os.environ.get(row[2]):
        print(
            f"note: this value comes from {row[2]} (environment), not from agent.toml",
            file=sys.stderr,
        )


def run_set(args: argparse.Namespace) -> int:
    from edgeagent.config import env_override, set_value
    from edgeagent.config.operations import set_warnings

    value = value_to_set(args.key, args.value, args.from_file)
    stored = set_value(config_dir_from(args), args.key, value)
    if stored not in (value, HIDDEN):
        print(f"note: stored {args.key} as {stored}", file=sys.stderr)
    for warning in set_warnings(args.key, stored):
        print(f"warning: {warning} (stored all the same)", file=sys.stderr)
    _warn_overridden(args.key, env_override(args.key))
    return OK


def value_to_set(key: str, given: str | None, from_file: Path | None) -> str:
    """The value for `config set`: from argv, standard input (-), --from-file or a prompt.

    A secret key's value never comes from argv: every user of the machine
    can read a process's arguments (ps, /proc/<pid>/cmdline).
    """
    from edgeagent.config.keys import lookup

    secret = lookup(key).secret
    ways = (
        f"type it at a prompt (no echo): agent config set {key}\n"
        f"  or pipe it in: agent config set {key} - < FILE\n"
        f"  or read it from a file: agent config set {key} --from-file FILE"
    )
    if from_file is not None:
        if given is not None:
            raise UsageError(f"give either VALUE or --from-file for {key}, not both", ways)
        if secret:
            from edgeagent.cli.pin_input import read_secret_file

            return read_secret_file(from_file, f"value for {key}", "--from-file")
        try:
            return from_file.read_text().rstrip("\r\n")
        except OSError as error:
            raise ConfigError(
                f"cannot read the value for {key} from {from_file}: {error.strerror}",
                "--from-file must name a readable file holding the value",
            ) from error
    if given == "-":
        return sys.stdin.read().rstrip("\r\n")
    if given is not None and not secret:
        return given
    if given is not None:
        raise UsageError(
            f"{key} is secret: a value on the command line is visible to every user of "
            "this machine (ps, /proc/<pid>/cmdline), so it was not stored",
            ways,
        )
    if not secret:
        raise UsageError(f"no value given for {key}", f"agent config set {key} VALUE")
    if not sys.stdin.isatty():
        raise UsageError(f"no value given for {key}, and no terminal to ask for it", ways)
    value = getpass.getpass(f"{key}: ")
    if getpass.getpass(f"{key} again: ") != value:
        raise UsageError(f"the two values typed for {key} differ", "run the command again")
    return value


def run_unset(args: argparse.Namespace) -> int:
    from edgeagent.config import env_override, unset

    if not unset(config_dir_from(args), args.key):
        print(f"note: {args.key} was not set in agent.toml", file=sys.stderr)
    _warn_overridden(args.key, env_override(args.key))
    return OK


def _warn_overridden(key: str, variable: str | None) -> None:
    if variable is not None:
        print(f"note: {variable} is set and overrides {key} in this environment", file=sys.stderr)


def run_list(args: argparse.Namespace) -> int:
    from edgeagent.config import list_values

    entries = list_values(
        config_dir_from(args), doc=args.doc, prefix=args.prefix, include_defaults=args.all
    )
    for entry in entries:
        print(format_doc(entry) if args.doc else f"{entry.key}={entry.value}")
    from_env = [f"{entry.key} ({entry.env_var})" for entry in entries if entry.source == "env"]
    if from_env and not args.doc:
        print(f"note: from the environment, not agent.toml: {', '.join(from_env)}", file=sys.stderr)
    return OK


def format_doc(entry: ConfigEntry) -> str:
    """One key's documentation block for `list --doc`."""
    from edgeagent.config.keys import lookup

    default = f" (default: {entry.default})" if entry.default else ""
    # A secret is never shown on a command line, not even as an example.
    example = "(asks without echo)" if lookup(entry.key).secret else shlex.quote(entry.example)
    lines = [
        entry.key,
        *textwrap.wrap(entry.doc, width=78, initial_indent="    ", subsequent_indent="    "),
        f"    value:   {entry.format}{default}",
        f"    example: agent config set {entry.key} {example}",
        f"    env:     {entry.env_var}",
        "",
    ]
    return "\n".join(lines)

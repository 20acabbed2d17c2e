"""What every command's parser shares: the parser class, the config dir, the cloud, old spellings.

    parser = AgentParser(prog="agent")              # allow_abbrev=False, examples kept as written
    run = add_command(actions, "run", "run the bridge", example="agent bridge run c8y")
    add_cloud(run)                                  # positional CLOUD, from the cloud registry
    add_renamed(run, "--uri", "--token-uri")        # old spelling: works, warns on stderr

The command-line vocabulary (README, "Command-line vocabulary") lives here
as code: one word per concept, and the old spellings that still work for
one release. The cloud names come from :mod:`edgeagent.clouds.registry`,
imported only when a command that takes a cloud is parsed or helped:
building the parser for `agent config get` stays free of pydantic.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeAlias, overload

from edgeagent.errors import UsageError

DEFAULT_CONFIG_DIR = Path("/etc/agent")
_RENAMED = "renamed__"


def config_dir_from(args: argparse.Namespace) -> Path:
    """``--config-dir``, else ``$AGENT_CONFIG_DIR``, else /etc/agent."""
    if getattr(args, "config_dir", None):
        return Path(args.config_dir)
    env = os.environ.get("AGENT_CONFIG_DIR")
    return Path(env) if env else DEFAULT_CONFIG_DIR


def note(text: str) -> None:
    """Guidance for the person at the terminal: stderr, so stdout holds only results."""
    print(text, file=sys.stderr)


class AgentParser(argparse.ArgumentParser):
    """No abbreviations (``--pin 1234`` must not mean ``--pin-file 1234``); epilogs as written.

    ``add_parser`` makes its subparsers of the same class, so this holds for
    every parser under ``agent``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    # The words of the command line being parsed: argparse's messages quote
    # them, and a value after `--pin` must not be quoted back.
    _words: ClassVar[list[str]] = []

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        # The top parser gets the whole command line, each subcommand's parser
        # the words after its name: where an option like `--pin` would be.
        given = args[0] if args else kwargs.get("args")
        AgentParser._words = list(sys.argv[1:] if given is None else given)
        return super().parse_known_args(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # `--pin 1234` is refused (no abbreviations), but argparse's message
        # would print the PIN back: hide what follows a secret-looking option,
        # in "unrecognized arguments" and wherever else a message quotes it
        # (`cert show --pin 1234` takes 1234 for the CLOUD).
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            message = prefix + " ".join(hide_secret_values(message[len(prefix) :].split(" ")))
        for secret in secret_values(AgentParser._words):
            message = message.replace(repr(secret), HIDDEN)
            message = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", HIDDEN, message)
        super().error(message)


_SECRET_OPTION = re.compile(r"^--?[\w-]*(pin|password|passwd|secret|otp)[\w-]*$", re.IGNORECASE)
HIDDEN = "<hidden>"


def secret_values(words: Sequence[str]) -> set[str]:
    """The values given to secret-looking options in ``words`` (``--pin X``, ``--pin=X``)."""
    found = set()
    for index, word in enumerate(words):
        name, equals, value = word.partition("=")
        if not (word.startswith("-") and _SECRET_OPTION.match(name)):
            continue
        if equals:
            found.add(value)
        elif index + 1 < len(words) and not words[index + 1].startswith("-"):
            found.add(words[index + 1])
    return {value for value in found if value}


def hide_secret_values(words: Sequence[str]) -> list[str]:
    """``words`` with the value of each secret-looking option (``--pin X``, ``--pin=X``) hidden.

    An unknown option's argument is unknown too: ``--pin 1234`` is most
    likely a PIN, and the words after it up to the next option are hidden.
    """
    shown: list[str] = []
    hiding = False
    for word in words:
        name, equals, _ = word.partition("=")
        if word.startswith("-"):
            secret = bool(_SECRET_OPTION.match(name))
            shown.append(f"{name}={HIDDEN}" if equals and secret else word)
            hiding = secret and not equals
        elif hiding:
            if shown[-1] != HIDDEN:
                shown.append(HIDDEN)
        else:
            shown.append(word)
    return shown


Subparsers: TypeAlias = "argparse._SubParsersAction[AgentParser]"


def add_command(
    sub: Subparsers,
    name: str,
    help: str,
    *,
    example: str,
    description: str | None = None,
) -> AgentParser:
    """A subcommand with its one-line help, a description and an example in ``--help``."""
    text = textwrap.fill(description or (help[0].upper() + help[1:] + "."), width=78)
    examples = "\n".join(f"  {line}" for line in example.splitlines())
    return sub.add_parser(
        name,
        help=help,
        description=text,
        epilog=f"example:\n{examples}",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# -- the cloud ------------------------------------------------------------------------------


class _CloudNames(Sequence[str]):
    """The registry's cloud names, looked up only when argparse asks (parsing or --help)."""

    @staticmethod
    def _names() -> tuple[str, ...]:
        from edgeagent.clouds.registry import CLOUDS

        return CLOUDS

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()


CLOUD_NAMES: Sequence[str] = _CloudNames()


def default_cloud() -> str:
    """The cloud a command means when none is named: the registry's first."""
    return CLOUD_NAMES[0]


def add_cloud(parser: argparse.ArgumentParser, *, optional: str = "") -> None:
    """The cloud, positional everywhere (``agent connect c8y``, ``agent cert show c8y``).

    ``optional`` says what leaving it out means; ``--cloud`` is its old spelling.
    """
    parser.add_argument(
        "cloud",
        nargs="?" if optional else None,
        choices=CLOUD_NAMES,
        metavar="CLOUD",  # a metavar of our own: argparse then lists choices only on demand
        help=f"which cloud, one of: %(choices)s{f' ({optional})' if optional else ''}",
    )
    if optional:
        add_renamed(
            parser,
            "--cloud",
            "CLOUD (positional)",
            dest="cloud",
            choices=CLOUD_NAMES,
            metavar="CLOUD",
        )


# -- old spellings --------------------------------------------------------------------------


class _Renamed(argparse.Action):
    """An old option: says so on stderr and hands its value to the new one (resolve_renamed)."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"warning: {option_string} is deprecated and will be removed in the next "
            f"release; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_renamed(
    parser: argparse.ArgumentParser,
    old: str,
    new: str,
    *,
    dest: str | None = None,
    flag: bool = False,
    **kwargs: Any,
) -> None:
    """Accept ``old`` for one more release, hidden from --help, as ``new`` (its dest)."""
    target = dest or new.lstrip("-").replace("-", "_")
    extra: dict[str, Any] = {"nargs": 0, "const": True} if flag else {}
    parser.add_argument(
        old,
        dest=_RENAMED + target,
        action=_Renamed,
        new=new,
        default=None,
        help=argparse.SUPPRESS,
        **extra,
        **kwargs,
    )


def resolve_renamed(args: argparse.Namespace) -> None:
    """Move each old option's value to its new name, unless the new one was given too."""
    for name, value in list(vars(args).items()):
        if not name.startswith(_RENAMED):
            continue
        delattr(args, name)
        target = name[len(_RENAMED) :]
        if value is not None and getattr(args, target, None) in (None, False):
            setattr(args, target, value)


def require(args: argparse.Namespace, dest: str, option: str) -> None:
    """A required option whose old spelling may stand in for it (checked after resolving)."""
    if getattr(args, dest, None) is None:
        raise UsageError(f"{option} is required", f"pass {option} (see --help)")

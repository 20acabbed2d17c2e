"""Reading a PIN the way a user gives it: a file, a variable, the config, or a prompt.

Never from argv (``ps`` shows every process's arguments to every user).
A prompt only on a terminal, without echo; otherwise an error that says how
to pass it. ``CliPins`` is the command line's :class:`edgeagent.hsm.policy.PinSource`:
which PIN a command needs is decided there, how it is read here.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.errors import ConfigError, MissingConfigValue, PinIncorrect, UsageError

if TYPE_CHECKING:
    from edgeagent.config import AgentConfig

SO_PIN_ENV = "EDGEAGENT_SO_PIN"
NEW_PIN_ENV = "EDGEAGENT_NEW_PIN"
# Their names until this release: they looked like overrides of config keys that do not exist.
OLD_PIN_ENV = {SO_PIN_ENV: "AGENT_HSM_SO_PIN", NEW_PIN_ENV: "AGENT_HSM_NEW_PIN"}


def read_pin(
    what: str,
    *,
    file: Path | None,
    file_option: str,
    env_var: str | None = None,
    old_env_var: str | None = None,
    configured: str | None = None,
    confirm: bool = False,
) -> str:
    """The PIN from ``file``, else ``env_var`` (or its old name), ``configured``, a prompt."""
    if file is not None:
        pin = read_secret_file(file, what, file_option)
        if not pin:
            raise MissingConfigValue(f"{file} ({file_option}) is empty", f"write the {what} in it")
        return pin
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    if old_env_var and env_var and os.environ.get(old_env_var):
        print(
            f"warning: {old_env_var} is deprecated and will be removed in the next release; "
            f"use {env_var}",
            file=sys.stderr,
        )
        return os.environ[old_env_var]
    if configured:
        return configured
    if not sys.stdin.isatty():
        via = f" or set {env_var}" if env_var else ""
        raise MissingConfigValue(
            f"the {what} was not given, and there is no terminal to ask for it",
            f"pass {file_option} FILE (a file holding only the PIN, mode 0600){via}",
        )
    pin = getpass.getpass(f"{what}: ")
    if confirm and getpass.getpass(f"{what} again: ") != pin:
        raise UsageError(f"the two {what}s differ", "run the command again")
    if not pin:
        raise MissingConfigValue(f"empty {what}", "type the PIN at the prompt")
    return pin


def read_secret_file(file: Path, what: str, file_option: str) -> str:
    """The text of ``file`` without its line end, for ``file_option``.

    A value that names no file is never repeated in the error: a person who
    typed ``--pin-file 1234`` gave the PIN itself, and an error message ends up
    in terminals, logs and bug reports. A path that exists is a path, and is
    named.
    """
    try:
        return file.read_text().rstrip("\r\n")
    except FileNotFoundError:
        raise UsageError(
            f"the value given to {file_option} names no file (it is not shown here: "
            f"it may be the {what} itself)",
            f"{file_option} takes the path of a file that holds only the {what} "
            "(mode 0600), never the secret itself",
        ) from None
    except OSError as error:
        raise ConfigError(
            f"cannot read {what} from {file}: {error.strerror}",
            f"{file_option} must name a readable file holding the {what}",
        ) from error


def ask_yes(question: str) -> bool:
    """Ask on the terminal; anything but y/yes is no."""
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


class CliPins:
    """PINs as the user gives them on this command line (edgeagent.hsm.policy.PinSource)."""

    def __init__(self, args: argparse.Namespace, config: AgentConfig) -> None:
        self._args = args
        self._config = config

    def user_pin(self, *, confirm: bool = False) -> str:
        pin = self._config.device.cryptoki.pin
        file = getattr(self._args, "pin_file", None)
        self._args.user_pin_from = (
            f"--pin-file {file}"
            if file is not None
            else self._config.named("device.cryptoki.pin")
            if pin is not None
            else "the user PIN typed at the prompt"
        )
        return read_pin(
            "user PIN",
            file=file,
            file_option="--pin-file",
            configured=pin.get_secret_value() if pin is not None else None,
            confirm=confirm,
        )

    def so_pin(self) -> str:
        return self._from("SO PIN", "so_pin_file", "--so-pin-file", SO_PIN_ENV)

    def new_pin(self) -> str:
        return self._from("new user PIN", "new_pin_file", "--new-pin-file", NEW_PIN_ENV, True)

    def _from(self, what: str, dest: str, option: str, env: str, confirm: bool = False) -> str:
        return read_pin(
            what,
            file=getattr(self._args, dest, None),
            file_option=option,
            env_var=env,
            old_env_var=OLD_PIN_ENV[env],
            confirm=confirm,
        )


def naming_the_pin(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run``, whose refused user PIN names where it came from (``check AGENT_..._PIN``).

    The token says only "PIN incorrect"; which PIN this command read, and
    from where, is known here (:meth:`CliPins.user_pin` notes it).
    """

    @functools.wraps(run)
    def named(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except PinIncorrect as error:
            source = getattr(args, "user_pin_from", None)
            if source is None or "SO PIN" in error.cause or error.fix.startswith("check "):
                raise
            raise PinIncorrect(error.cause, f"check {source}; {error.fix}") from error

    return named


# -- the options that name PIN files -----------------------------------------------------


def add_pin_file(parser: argparse.ArgumentParser, help: str = "") -> None:
    parser.add_argument(
        "--pin-file",
        type=Path,
        metavar="FILE",
        help=help
        or "file holding the user PIN (default: device.cryptoki.pin, "
        "AGENT_DEVICE_CRYPTOKI_PIN, else a prompt on a terminal)",
    )


def add_so_pin_file(parser: argparse.ArgumentParser) -> None:
    _add_pin_file_or_env(parser, "--so-pin-file", "the security officer PIN", SO_PIN_ENV)


def add_new_pin_file(parser: argparse.ArgumentParser) -> None:
    _add_pin_file_or_env(parser, "--new-pin-file", "the new PIN", NEW_PIN_ENV)


def _add_pin_file_or_env(
    parser: argparse.ArgumentParser, option: str, what: str, env_var: str
) -> None:
    parser.add_argument(
        option, type=Path, metavar="FILE", help=f"file holding {what} (or {env_var}; else a prompt)"
    )

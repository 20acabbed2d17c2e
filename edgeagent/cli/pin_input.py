"""Reading a PIN the way a user gives it: a file, a variable, the config, or a prompt.

Never from argv (``ps`` shows every process's arguments to every user).
A prompt only on a terminal, without echo; otherwise an error that says how
to pass it.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from edgeagent.errors import ConfigError, MissingConfigValue, UsageError


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
        try:
            pin = file.read_text().rstrip("\r\n")
        except OSError as error:
            raise ConfigError(
                f"cannot read {what} from {file}: {error.strerror}",
                f"{file_option} must name a readable file holding the PIN",
            ) from error
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


def ask_yes(question: str) -> bool:
    """Ask on the terminal; anything but y/yes is no."""
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")

"""`agent config get` without loading the schema library (pydantic costs ~100 ms).

    value = quick_get(config_dir, "device.cryptoki.mode")   # None: ask the full path

It answers only when it is sure to print what the full path would: the
file parses, holds only known keys, every value passes the same rules the
schema applies (without needing any normalisation), and no AGENT_* variable
overrides anything. Otherwise it returns None and the caller takes the full
path, which produces the exact value or error.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from edgeagent.config.keytable import KEYS
from edgeagent.config.locations import state_defaults
from edgeagent.config.values import name_list, parse_host, parse_host_port

CONFIG_FILE_NAME = "agent.toml"


def quick_get(
    config_dir: Path, key: str, reveal: bool = False, environ: Mapping[str, str] | None = None
) -> str | None:
    row = KEYS.get(key)
    if row is None:
        return None
    env = os.environ if environ is None else environ
    if any(env.get(var) for _, _, var in KEYS.values()):
        return None
    try:
        data = tomllib.loads((config_dir / CONFIG_FILE_NAME).read_text())
    except FileNotFoundError:
        data = {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    values: dict[str, Any] = {}
    if not _flatten(data, "", values):
        return None
    for name, value in values.items():
        if name not in KEYS or not _valid(KEYS[name][0], value):
            return None
    fmt, default = row[0], row[1]
    if key not in values:
        # None: unset, the full path says so with its fix.
        own = state_defaults(config_dir).get(key)
        return str(own) if own is not None else default
    value = values[key]
    if fmt == "the token's user PIN":
        return str(value) if reveal else "<hidden>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flatten(table: dict[str, Any], prefix: str, out: dict[str, Any]) -> bool:
    for name, value in table.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict):
            if dotted in KEYS or not _flatten(value, dotted + ".", out):
                return False
        else:
            out[dotted] = value
    return True


def _valid(fmt: str, value: Any) -> bool:
    """The schema's rule for ``fmt``, accepting only values it would keep as they are."""
    if fmt == "true or false":
        return isinstance(value, bool)
    if fmt == "a port number, 1-65535":
        return type(value) is int and 1 <= value <= 65535
    if fmt == "the token's user PIN":
        return (type(value) is int) or (isinstance(value, str) and bool(value))
    if not isinstance(value, str):
        return False
    if fmt.startswith("one of: "):
        return value in fmt[len("one of: ") :].split(", ")
    if fmt == "an absolute path":
        return value.startswith("/") and str(PurePosixPath(value)) == value
    if fmt.startswith("a PKCS#11 URI"):
        return value.startswith("pkcs11:")
    if fmt.startswith("host[:port]"):
        try:
            parse_host_port(value)
        except ValueError:
            return False
        return True
    if fmt.startswith("a host name or IP address"):
        try:
            parse_host(value)
        except ValueError:
            return False
        return True
    if fmt.startswith("comma-separated"):
        try:
            return name_list(value) == value
        except ValueError:
            return False
    return fmt == "text"

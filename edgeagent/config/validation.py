"""pydantic's ValidationError -> our ConfigError, at one boundary.

Messages are built from each error's location, message and input, never from
``str(ValidationError)``: that text includes the input value, and the input
may be the PIN.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from edgeagent.config.keys import KeySpec, keys_by_name, unknown_key
from edgeagent.errors import ConfigError, InvalidConfigValue, UnknownConfigKey


def _reason(item: Any, spec: KeySpec | None) -> str:
    """Why the value was refused, in our words: pydantic's own text never reaches a user.

    Our validators (``value_error``) already speak the user's language; for
    everything pydantic checks itself (types, ranges, choices) the key's
    format says what it must be: "must be a port number, 1-65535".
    """
    if item["type"] in ("value_error", "assertion_error"):
        # Our validators raise ValueError; pydantic prefixes "Value error, ".
        return str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if spec is None:
        return "must be a table of keys, not a value"
    if item["type"] in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a value ({spec.format}), not a table"
    return f"must be {spec.format}"


def config_error(error: ValidationError, prefix: str, where: Callable[[str], str]) -> ConfigError:
    """Translate ``error`` from validating the model at dotted ``prefix``.

    ``where(key)`` names the place a bad key's value came from, e.g.
    ``"c8y.url in /etc/agent/agent.toml"`` or ``"AGENT_C8Y_URL (c8y.url)"``.
    """
    specs = keys_by_name()
    unknown: list[str] = []
    problems: list[str] = []
    fixes: list[str] = []
    for item in error.errors(include_url=False):
        name = prefix + ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            unknown.append(name)
            continue
        spec = specs.get(name)
        text = f"{where(name)}: {_reason(item, spec)}"
        value = item.get("input")
        if spec is not None and not spec.secret and isinstance(value, str | int | float):
            # A key URI may carry a PIN (pin-value): never echo it.
            shown = value
            if isinstance(value, str):
                shown = re.sub(r"(?i)(pin-value=)[^&]*", r"\1***", value)
            text += f" (got {shown!r})"
        problems.append(text)
        if spec is not None:
            fixes.append(f"{name} must be {spec.allowed()}; see `agent config list --doc {name}`")
        else:
            fixes.append(f"{name} must be a table of keys; see `agent config list --doc {name}`")
    if unknown:
        first = unknown_key(unknown[0])
        names = ", ".join(where(name) for name in unknown)
        return UnknownConfigKey(
            f"unknown configuration key: {names}", first.fix + "; remove or rename it"
        )
    return InvalidConfigValue("invalid value for " + "\n  ".join(problems), "\n  ".join(fixes))


def parse_value(spec: KeySpec, raw: str, source: str | None = None) -> Any:
    """Validate one raw string for ``spec`` alone; the typed value or InvalidConfigValue.

    ``source`` names where the string came from (an environment variable) in
    the message; by default the key itself is named.
    """
    where = source or spec.name
    if raw == "":
        raise InvalidConfigValue(
            f"empty value for {where}",
            f"give {spec.allowed()}; to remove it: agent config unset {spec.name}",
        )
    try:
        section = spec.section.model_validate({spec.field: raw})
    except ValidationError as error:
        # Reuse the schema's own validators by validating the key's section with
        # only this field set; every other field of a section has a default.
        prefix = spec.name.rpartition(".")[0] + "."
        raise config_error(error, prefix, lambda _: where) from None
    return getattr(section, spec.field)

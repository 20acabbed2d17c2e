"""Environment overrides: ``AGENT_`` + the dotted key upper-cased, dots -> ``_``.

    device.cryptoki.pin  ->  AGENT_DEVICE_CRYPTOKI_PIN
    c8y.device.key_uri   ->  AGENT_C8Y_DEVICE_KEY_URI

The same rule as thin-edge's TEDGE_*, so users moving over can guess the
names. pydantic-settings is not used for this: its nested naming needs a
delimiter (``AGENT_DEVICE__CRYPTOKI__PIN``) because a single ``_`` both joins
sections and appears inside key names, so the flat names cannot be parsed
back generically. We go the other way, from each schema key to its one
variable name, which is unambiguous as long as the names are unique (a unit
test checks that). It also lets an empty variable mean "unset" (thin-edge
b61addc9c: an empty PIN variable must not become an empty PIN) and lets an
invalid value name the variable it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from edgeagent.config.keys import KeySpec, absolute_if_path, all_keys


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[KeySpec, str]:
    """The keys set through the environment, with their raw values.

    Empty variables are ignored. Relative paths are made absolute against the
    current directory, as for `agent config set`.
    """
    env = os.environ if environ is None else environ
    found: dict[KeySpec, str] = {}
    for spec in all_keys():
        raw = env.get(spec.env_var)
        if raw:
            found[spec] = absolute_if_path(spec, raw)
    return found

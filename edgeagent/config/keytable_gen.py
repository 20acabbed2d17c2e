"""Write ``keytable.py`` from the schema: ``python -m edgeagent.config.keytable_gen``.

The schema (pydantic) stays the one definition of every key; the table is
what the quick `agent config get` path reads without importing pydantic. A
test fails when the two differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from edgeagent.config.keys import all_keys
from edgeagent.config.schema import AgentConfig

HEADER = '''"""Every configuration key: (format, default as `get` prints it, environment variable).

Generated from edgeagent/config/schema.py by `python -m edgeagent.config.keytable_gen`;
do not edit (tests/unit/test_config_quick.py checks it matches the schema).
"""

CLOUDS: tuple[str, ...] = {clouds!r}
"""Every cloud section of the schema, in schema order (read through edgeagent.clouds.registry)."""

KEYS: dict[str, tuple[str, str | None, str]] = {{
'''


def _shown(default: Any) -> str | None:
    if default is None:
        return None
    if isinstance(default, SecretStr):
        return None
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def table() -> dict[str, tuple[str, str | None, str]]:
    """What keytable.KEYS must hold, from the schema."""
    return {spec.name: (spec.format, _shown(spec.default), spec.env_var) for spec in all_keys()}


def render() -> str:
    rows = [f"    {name!r}: {row!r},\n" for name, row in table().items()]
    return HEADER.format(clouds=AgentConfig.cloud_names()) + "".join(rows) + "}\n"


if __name__ == "__main__":
    Path(__file__).with_name("keytable.py").write_text(render())

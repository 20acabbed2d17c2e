"""Settings root takes only from a configuration root owns.

    refuse_untrusted_settings(Path("/etc/agent/agent.toml"), settings_in_file)

Run as root, the agent loads the PKCS#11 module the configuration names
(its constructor runs as root) and sends the file a key URI's ``pin-source``
names to the token as a PIN (``/etc/shadow`` would do). So when the process
is root, those settings are refused from an agent.toml that another user
could have written: a file or directory not owned by root, or writable by a
non-root group or by everyone. The environment (root's own) is trusted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from edgeagent.errors import ConfigError
from edgeagent.safe_files import ROOT_UID, changeable_by_others

# In a key URI: the module to load and the file to read as a PIN (RFC 7512;
# module-name too, since it picks a file by name).
_LOADS_OR_READS = re.compile(r"(?i)[?&](module-path|module-name|pin-source)=")


def dangerous_setting(name: str, value: object) -> str | None:
    """Why ``name = value`` makes root load or read a file, or None."""
    if name.endswith("module_path") and value is not None:
        return "the PKCS#11 module root loads"
    if isinstance(value, str) and value.startswith("pkcs11:"):
        found = _LOADS_OR_READS.search(value)
        if found is not None:
            return f"the key URI's {found.group(1).lower()}"
    return None


def refuse_untrusted_settings(path: Path, settings: Iterable[tuple[str, object]]) -> None:
    """As root, refuse module and PIN-file settings from a file another user can change."""
    if os.geteuid() != ROOT_UID:
        return
    risky = [(name, why) for name, value in settings if (why := dangerous_setting(name, value))]
    if not risky:
        return
    writer = changeable_by_others(path)
    if writer is None:
        return
    place, who = writer
    name, why = risky[0]
    raise ConfigError(
        f"{name} in {path} sets {why}, but {place} can be changed by {who}: running as "
        "root, the agent takes a module or a PIN file only from a configuration only root "
        "can write",
        f"make it root's: chown root {place} && chmod go-w {place} (the agent's user "
        f"can keep reading it through its group), or set {name} in the environment",
    )

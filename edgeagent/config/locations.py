"""Where the agent keeps its state by default: system paths for /etc/agent, else under DIR.

    state_defaults(Path("/etc/agent"))      # {}: the schema's own defaults, /run/agent...
    state_defaults(Path("/tmp/try/etc"))    # {"run.path": Path("/tmp/try/etc/run"), ...}

A configuration directory of one's own (``--config-dir DIR`` or
``AGENT_CONFIG_DIR``, anything but /etc/agent) is a test bed, a container or
a second agent on the machine: its certificate, pid files and logs must not
land in /etc/agent, /run/agent or /var/log/agent, which belong to the
system's agent (or do not exist, or are not writable). So the defaults that
hold state follow the directory:

    device.cert_path   /etc/agent/device-certs/device.pem   DIR/device-certs/device.pem
    run.path           /run/agent                           DIR/run
    logs.path          /var/log/agent                       DIR/logs

A value set in agent.toml or the environment wins as always. Not here, on
purpose: ``device.cryptoki.socket_path`` is where two configurations meet
(the signing service's /etc/agent-p11-server and the agent's), and
``<cloud>.root_cert_path`` is the system's trust store, read only.

No pydantic here: the quick `agent config get` path reads this too.
"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_CONFIG_DIR = Path("/etc/agent")

STATE_DEFAULTS: dict[str, tuple[Path, str]] = {
    # key: (default with /etc/agent, path under any other configuration directory)
    "device.cert_path": (
        SYSTEM_CONFIG_DIR / "device-certs" / "device.pem",
        "device-certs/device.pem",
    ),
    "run.path": (Path("/run/agent"), "run"),
    "logs.path": (Path("/var/log/agent"), "logs"),
}


def system_default(key: str) -> Path:
    """The default of a state-holding key for the system's agent (/etc/agent)."""
    return STATE_DEFAULTS[key][0]


def is_system_config_dir(config_dir: Path) -> bool:
    """True for /etc/agent, however it is spelt (``/etc/agent/``, a symlink to it)."""
    absolute = Path(os.path.abspath(config_dir))
    if absolute == SYSTEM_CONFIG_DIR:
        return True
    try:
        return absolute.resolve() == SYSTEM_CONFIG_DIR.resolve()
    except OSError:
        return False


def state_defaults(config_dir: Path) -> dict[str, Path]:
    """The state-holding keys' defaults for ``config_dir``; empty for /etc/agent."""
    if is_system_config_dir(config_dir):
        return {}
    base = Path(os.path.abspath(config_dir))
    return {key: base / below for key, (_, below) in STATE_DEFAULTS.items()}

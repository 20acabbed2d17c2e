"""The clouds the user connected: what `agent bridge host` brings up after a reboot.

    add(config_dir, "c8y")        # agent connect c8y, once its bridge runs
    remove(config_dir, "c8y")     # agent disconnect c8y
    names(config_dir)             # ["az", "c8y"]

One cloud name per line in ``<config dir>/connected-clouds``, next to
agent.toml, so it lasts as long as the configuration (``run.path`` is gone
after a reboot). It holds names only, no secret: written atomically, mode 0644
(the bridge's own user reads it under systemd; root writes it).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

FILE_NAME = "connected-clouds"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def path(config_dir: Path) -> Path:
    return config_dir / FILE_NAME


def names(config_dir: Path) -> list[str]:
    """The connected clouds, sorted; [] when none (or the file is missing)."""
    try:
        text = path(config_dir).read_text()
    except FileNotFoundError:
        return []
    return sorted({line.strip() for line in text.splitlines() if _NAME.match(line.strip())})


def add(config_dir: Path, cloud: str) -> bool:
    """Add ``cloud``; True when it was not connected before."""
    current = names(config_dir)
    if cloud in current:
        return False
    _write(config_dir, [*current, cloud])
    return True


def remove(config_dir: Path, cloud: str) -> None:
    current = names(config_dir)
    if cloud in current:
        _write(config_dir, [name for name in current if name != cloud])


def _write(config_dir: Path, clouds: list[str]) -> None:
    if not all(_NAME.match(name) for name in clouds):
        raise ValueError(f"not cloud names: {clouds!r}")
    fd, temp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=config_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{name}\n" for name in sorted(clouds)))
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        os.replace(temp, path(config_dir))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise

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
import errno
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeagent.errors import ServiceError
from edgeagent.safe_files import ROOT_UID, changeable_by_others

FILE_NAME = "connected-clouds"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def path(config_dir: Path) -> Path:
    return config_dir / FILE_NAME


def names(config_dir: Path) -> list[str]:
    """The connected clouds, sorted; [] when none (or the file is missing).

    Never through a symbolic link; and run as root, never from a file that
    another user could change (as agent.toml's dangerous settings,
    config/ownership.py): root would start the clouds it names.
    """
    file = path(config_dir)
    try:
        # O_NONBLOCK: a FIFO planted at its name never blocks the open (N9).
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return []
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise ServiceError(
            f"{file} is a symbolic link; it is never followed",
            f"replace it by a file: rm {file}, then agent connect <cloud> again",
        ) from None
    with os.fdopen(fd) as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ServiceError(
                f"{file} is not a regular file",
                f"replace it by a file: rm {file}, then agent connect <cloud> again",
            )
        os.set_blocking(fd, True)
        if os.geteuid() == ROOT_UID:
            writer = changeable_by_others(file)
            if writer is not None:
                place, who = writer
                raise ServiceError(
                    f"{place} can be changed by {who}: running as root, the agent reads "
                    f"the connected clouds only from a {file} only root can write",
                    f"make it root's: chown root {place} && chmod go-w {place}",
                )
        text = handle.read()
    return sorted({line.strip() for line in text.splitlines() if _NAME.match(line.strip())})


def add(config_dir: Path, cloud: str) -> bool:
    """Add ``cloud``; True when it was not connected before."""
    with _locked(config_dir):
        current = names(config_dir)
        if cloud in current:
            return False
        _write(config_dir, [*current, cloud])
        return True


def remove(config_dir: Path, cloud: str) -> None:
    with _locked(config_dir):
        current = names(config_dir)
        if cloud in current:
            _write(config_dir, [name for name in current if name != cloud])


@contextlib.contextmanager
def _locked(config_dir: Path) -> Iterator[None]:
    """An exclusive flock on the config directory itself around read, modify and
    replace: two concurrent `agent connect`s never lose each other's cloud. (The
    file is replaced by rename, so a lock on it would be on an inode left behind.)"""
    fd = os.open(config_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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

"""agent.toml on disk: read with tomlkit, written atomically, mode kept private.

Edits go through the tomlkit document, so the user's comments, blank lines
and key order survive ``agent config set``. A write is a temp file in the
same directory, fsync, ``os.replace``, fsync of the directory: a crash leaves
the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import ParseError
from tomlkit.toml_document import TOMLDocument

from edgeagent.errors import ConfigError, ConfigSyntaxError, ConfigWriteError

CONFIG_FILE_NAME = "agent.toml"
SECRET_FILE_MODE = 0o600
DEFAULT_FILE_MODE = 0o644
CONFIG_DIR_MODE = 0o755


def config_file(config_dir: Path) -> Path:
    """The configuration file in ``config_dir``."""
    return config_dir / CONFIG_FILE_NAME


def read_document(path: Path) -> TOMLDocument | None:
    """The parsed file, or None when it does not exist (all defaults)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"cannot read {path}: {error}",
            "check the file's permissions (are you the user the agent runs as, or root?)",
        ) from error
    try:
        return tomlkit.parse(text)
    except ParseError as error:
        detail = str(error).removesuffix(f" at line {error.line} col {error.col}")
        # tomlkit counts columns from 0; editors and users count from 1.
        raise ConfigSyntaxError(str(path), error.line, error.col + 1, detail) from error


def nested_get(data: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    """(found, value) for a dotted path in nested mappings (a document's tables)."""
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def file_mode(path: Path, holds_secret: bool) -> int:
    """0600 while the file holds a secret; else the file's current mode, or 0644.

    One exception: a root-owned file in the agent's group (``root:agent``, as
    packaging/README.md installs it) keeps its group read bit, 0640, so that
    the bridge's user can read the PIN and only root can change the file.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return SECRET_FILE_MODE if holds_secret else DEFAULT_FILE_MODE
    if not holds_secret:
        return stat.S_IMODE(info.st_mode)
    if info.st_uid == 0 and info.st_gid != 0:
        return SECRET_FILE_MODE | (info.st_mode & stat.S_IRGRP)
    return SECRET_FILE_MODE


def write_document(path: Path, document: TOMLDocument, mode: int) -> None:
    """Replace ``path`` with ``document`` atomically, with permissions ``mode``."""
    # Write where the file really is, so a symlinked agent.toml stays a symlink.
    target = path.resolve() if path.is_symlink() else path
    directory = target.parent
    text = tomlkit.dumps(document)
    try:
        directory.mkdir(mode=CONFIG_DIR_MODE, parents=True, exist_ok=True)
        old = target.stat() if target.exists() else None
        # mkstemp creates the file 0600: a PIN is never readable by others,
        # not even for the moment before chmod.
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise ConfigWriteError(
            f"cannot write {path}: {error}", "check the directory's permissions"
        ) from error
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if old is not None and os.geteuid() == 0:
                # root editing a file owned by the agent's user keeps it theirs.
                os.fchown(handle.fileno(), old.st_uid, old.st_gid)
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException as error:
        # Interrupted or failed: drop the temp file; the old file was never touched.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        if isinstance(error, OSError):
            raise ConfigWriteError(
                f"cannot write {path}: {error}",
                f"{path} was left unchanged; check disk space and permissions",
            ) from error
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse, which is harmless.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

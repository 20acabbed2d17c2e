"""Which PKCS#11 module to load: the key URI's module-path / module-name, or the config.

RFC 7512's ``module-path`` names the library file; ``module-name`` names it
the way p11-kit does (``softhsm2``, ``opensc-pkcs11``): we look it up in
p11-kit's module registry like p11-kit itself. The URI names this key's
module, so it wins over the device-wide ``device.cryptoki.module_path``.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeagent.errors import MissingConfigValue, ModuleLoadError
from edgeagent.pkcs11.uri import Pkcs11Uri
from edgeagent.safe_files import ROOT_UID, changeable_by_others

P11_KIT_REGISTRIES = (Path("/etc/pkcs11/modules"), Path("/usr/share/p11-kit/modules"))
MODULE_DIRS = (Path("/usr/lib/x86_64-linux-gnu/pkcs11"), Path("/usr/lib/pkcs11"))


def module_for(uri: Pkcs11Uri | None, configured: Path | None) -> Path:
    if uri is not None and uri.module_path:
        return Path(uri.module_path)
    if uri is not None and uri.module_name:
        return module_by_name(uri.module_name)
    if configured is None:
        raise MissingConfigValue(
            "no PKCS#11 module: device.cryptoki.module_path is not set and the key URI "
            "has no module-path",
            "agent config set device.cryptoki.module_path /usr/lib/softhsm/libsofthsm2.so "
            "(the PKCS#11 library of your token)",
        )
    return configured


def module_by_name(name: str) -> Path:
    """The library p11-kit registers as ``name`` (``<registry>/<name>.module``)."""
    for registry in P11_KIT_REGISTRIES:
        entry = registry / f"{name}.module"
        try:
            text = entry.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "module" and value.strip():
                path = Path(value.strip())
                return path if path.is_absolute() else _in_module_dirs(path.name, name)
    return _in_module_dirs(f"{name}.so", name)


def _in_module_dirs(file_name: str, name: str) -> Path:
    for directory in MODULE_DIRS:
        candidate = directory / file_name
        if candidate.exists():
            return candidate
    known = sorted(
        entry.stem
        for registry in P11_KIT_REGISTRIES
        if registry.is_dir()
        for entry in registry.glob("*.module")
    )
    raise ModuleLoadError(
        f"no PKCS#11 module named {name!r} (module-name in the key URI)",
        f"use one of: {', '.join(known) or 'none registered'}, or module-path=<file>",
    )


def refuse_untrusted_module(path: Path) -> None:
    """As root, refuse a module file (or a directory above it) another user could change.

    Loading a library runs its constructors in this process: as root, a
    module replaceable by the agent's service user would be a way to root.
    """
    if os.geteuid() != ROOT_UID:
        return
    found = changeable_by_others(path)
    if found is None:
        return
    place, who = found
    shown = str(path) if place == Path(os.path.realpath(path)) else f"{path} (through {place})"
    raise ModuleLoadError(
        f"PKCS#11 module {shown} can be changed by {who}; running as root, the agent "
        "loads only a module that only root can change",
        f"chown root:root {place} && chmod go-w {place}, or install the module under /usr/lib",
    )

"""Issue 13 part 2: a configuration the service user can write must not steer root.

The attack as found: /etc/agent belonged to the agent's service user, and
root ran the agent. That user set ``device.cryptoki.module_path`` to a
library of their own (root ran its constructor) or a key URI's
``pin-source`` to a root-only file (root sent it to the token as a PIN).
Here ``nobody`` plays the service user: it owns the config dir and writes
agent.toml; root then runs the real `agent` command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.config import load_config, set_value
from edgeagent.pkcs11.module import load_module
from tests.support.agent_cli import exit_code, run_agent

NOBODY = 65534
SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("cc") is None,
    reason="needs root, setpriv and a C compiler",
)

# A library whose constructor leaves a mark: what "root runs its constructor" means.
_EVIL_C = """
#include <stdio.h>
__attribute__((constructor)) static void mark(void) {
    FILE *f = fopen(MARK, "w");
    if (f) { fputs("ran as root\\n", f); fclose(f); }
}
"""


@pytest.fixture
def base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="edgeagent-owner-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


@pytest.fixture
def evil_module(base: Path) -> Path:
    """A library the service user built and owns, marking ``base/mark`` when loaded."""
    source = base / "evil.c"
    source.write_text(_EVIL_C)
    library = base / "evil.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", f'-DMARK="{base / "mark"}"', "-o", str(library), str(source)],
        check=True,
        capture_output=True,
    )
    os.chown(library, NOBODY, NOBODY)
    return library


def _config_of_nobody(base: Path, toml: str) -> Path:
    """/etc/agent as packaging once made it: owned by the service user, who wrote agent.toml."""
    config_dir = base / "etc-agent"
    config_dir.mkdir(mode=0o700)
    os.chown(config_dir, NOBODY, NOBODY)
    subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "tee",
            str(config_dir / "agent.toml"),
        ],
        input=toml,
        text=True,
        check=True,
        capture_output=True,
    )
    return config_dir


def test_root_does_not_load_a_module_named_by_a_config_another_user_owns(
    base: Path, evil_module: Path
) -> None:
    root_owned_copy = base / "root-owned.so"
    shutil.copy(evil_module, root_owned_copy)  # even a module root owns: the config decides
    config_dir = _config_of_nobody(
        base, f'[device.cryptoki]\nmode = "module"\nmodule_path = "{root_owned_copy}"\n'
    )
    done = run_agent("hsm", "list-tokens", config_dir=config_dir)
    assert not (base / "mark").exists(), "root ran the constructor of a module nobody chose"
    assert done.returncode == exit_code(errors.ConfigError), done.stdout + done.stderr
    assert f"device.cryptoki.module_path in {config_dir / 'agent.toml'}" in done.stderr
    assert f"uid {NOBODY}" in done.stderr and "chown root" in done.stderr


def test_root_does_not_read_a_pin_source_named_by_a_config_another_user_owns(
    base: Path,
) -> None:
    shadow = base / "shadow"
    shadow.write_text("root:$6$secret\n")
    shadow.chmod(0o600)
    uri = f"pkcs11:token=t;object=k?pin-source={shadow}"
    config_dir = _config_of_nobody(base, f'[device]\nkey_uri = "{uri}"\n')
    with pytest.raises(errors.ConfigError) as caught:
        load_config(config_dir)
    assert "the key URI's pin-source" in str(caught.value)
    assert "device.key_uri" in str(caught.value)


def test_a_group_writable_config_file_is_not_trusted_either(base: Path) -> None:
    config_dir = base / "etc-agent"
    config_dir.mkdir(mode=0o755)
    toml = config_dir / "agent.toml"
    toml.write_text(f'[device.cryptoki]\nmodule_path = "{SOFTHSM}"\n')
    os.chown(toml, 0, NOBODY)
    toml.chmod(0o660)
    with pytest.raises(errors.ConfigError, match=f"its group \\(gid {NOBODY}\\)"):
        load_config(config_dir)


def test_a_root_owned_config_is_trusted_and_a_bad_one_can_still_be_listed(base: Path) -> None:
    config_dir = base / "etc-agent"
    config_dir.mkdir(mode=0o750)
    (config_dir / "agent.toml").write_text(f'[device.cryptoki]\nmodule_path = "{SOFTHSM}"\n')
    assert load_config(config_dir).device.cryptoki.module_path == SOFTHSM
    os.chown(config_dir, NOBODY, NOBODY)
    listed = run_agent("config", "list", config_dir=config_dir)  # to see and fix it
    assert listed.returncode == 0, listed.stderr


def test_root_does_not_load_a_module_file_another_user_can_replace(
    base: Path, evil_module: Path
) -> None:
    with pytest.raises(errors.ModuleLoadError) as caught:
        load_module(evil_module)
    assert f"its owner (uid {NOBODY})" in str(caught.value)
    assert not (base / "mark").exists()


def test_root_does_not_load_a_module_in_a_directory_another_user_owns(base: Path) -> None:
    shared = base / "lib"
    shared.mkdir()
    module = shared / "libsofthsm2.so"
    shutil.copy(SOFTHSM, module)  # root's file, but nobody may swap it
    os.chown(shared, NOBODY, NOBODY)
    with pytest.raises(errors.ModuleLoadError, match=r"through .*lib\)"):
        load_module(module)


def test_packaging_layout_root_agent_0640_keeps_the_service_user_reading(base: Path) -> None:
    config_dir = base / "etc-agent"
    config_dir.mkdir(mode=0o750)
    os.chown(config_dir, 0, NOBODY)
    toml = config_dir / "agent.toml"
    toml.write_text("")
    os.chown(toml, 0, NOBODY)
    toml.chmod(0o640)
    set_value(config_dir, "device.cryptoki.pin", "123456")
    info = toml.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, NOBODY, 0o640)
    set_value(config_dir, "device.cryptoki.module_path", str(SOFTHSM))
    assert load_config(config_dir).device.cryptoki.module_path == SOFTHSM

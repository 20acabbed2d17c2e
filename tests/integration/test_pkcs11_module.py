"""Loading PKCS#11 modules: each way it fails says what to fix."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from pkcs11.exceptions import PKCS11Error

from edgeagent.errors import ModuleLoadError
from edgeagent.pkcs11.module import classify_load_failure, load_module
from edgeagent.signing.module_signer import open_module_signer
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsm

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_missing_module(tmp_path: Path) -> None:
    with pytest.raises(ModuleLoadError) as caught:
        open_module_signer(tmp_path / "libnothing.so", None, "123456")
    assert "no such file" in caught.value.cause
    assert str(tmp_path / "libnothing.so") in caught.value.cause
    assert "device.cryptoki.module_path" in caught.value.fix


def test_executable_is_not_a_module() -> None:
    with pytest.raises(ModuleLoadError) as caught:
        load_module(Path("/bin/ls"))
    assert "not a loadable PKCS#11 module" in caught.value.cause
    assert "device.cryptoki.module_path" in caught.value.fix


def test_shared_library_without_pkcs11_entry_point() -> None:
    libc = sorted(glob.glob("/lib/*/libc.so.6") + glob.glob("/usr/lib/*/libc.so.6"))
    if not libc:
        pytest.skip("no libc.so.6 found")
    with pytest.raises(ModuleLoadError) as caught:
        load_module(Path(libc[0]))
    assert "not a PKCS#11 module (it has no C_GetFunctionList)" in caught.value.cause


def test_text_file_and_directory(tmp_path: Path) -> None:
    text = tmp_path / "libfake.so"
    text.write_text("not ELF")
    with pytest.raises(ModuleLoadError, match="not a loadable PKCS#11 module"):
        load_module(text)
    with pytest.raises(ModuleLoadError, match="is not a file"):
        load_module(tmp_path)


def test_permission_denied_is_not_a_pin_error() -> None:
    exc = PKCS11Error(
        "OS exception while loading /x.so: /x.so: cannot open shared object file: Permission denied"
    )
    error = classify_load_failure(Path("/x.so"), exc)
    assert "permission denied" in error.cause
    assert "PIN" not in str(error)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root + setpriv"
)
def test_permission_denied_for_an_unprivileged_user() -> None:
    # pytest's tmp_path is private to root: use a directory "nobody" can search.
    with tempfile.TemporaryDirectory(prefix="edgeagent-perm-") as name:
        directory = Path(name)
        directory.chmod(0o755)
        module = directory / "libsofthsm2.so"
        shutil.copy(SOFTHSM_MODULE.resolve(), module)
        module.chmod(0o600)  # root may read it; nobody may not
        done = _load_in_child(module, as_nobody=True)
    output = done.stdout + done.stderr
    assert "permission denied" in output, output
    assert "PIN" not in output


# Prints the ModuleLoadError that loading argv[1] raises.
_LOAD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from edgeagent.errors import ModuleLoadError
    from edgeagent.pkcs11.module import load_module
    try:
        load_module(Path(sys.argv[1]))
    except ModuleLoadError as exc:
        print(exc)
    """
)


def _load_in_child(
    module: Path, *, env: dict[str, str] | None = None, as_nobody: bool = False
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", _LOAD, str(module)]
    if as_nobody:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False
    )


def test_same_library_through_a_symlink_is_loaded_once(softhsm: SoftHsm) -> None:
    # A second C_Initialize of the same library would fail with
    # CKR_CRYPTOKI_ALREADY_INITIALIZED: both names must share one Module.
    assert SOFTHSM_MODULE.is_symlink()
    assert load_module(SOFTHSM_MODULE) is load_module(SOFTHSM_MODULE.resolve())


def test_softhsm_without_its_config_says_what_that_means(tmp_path: Path) -> None:
    # CKR_GENERAL_ERROR is all SoftHSM2 says; the message must point at the config.
    env = dict(os.environ, SOFTHSM2_CONF=str(tmp_path / "missing.conf"))
    done = _load_in_child(SOFTHSM_MODULE, env=env)
    assert "failed to initialise (CKR_GENERAL_ERROR)" in done.stdout, done.stdout + done.stderr
    assert "SOFTHSM2_CONF" in done.stdout

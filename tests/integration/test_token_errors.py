"""Token failures that are not PIN failures must never read as PIN failures.

Each runs the lookup in a child process: SoftHSM2 reads its configuration
once per process, and these need their own configuration or user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from edgeagent.errors import PinIncorrect
from edgeagent.signing.module_signer import open_module_signer
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsmToken

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]

_OPEN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from edgeagent.errors import AgentError
    from edgeagent.signing.module_signer import open_module_signer
    try:
        open_module_signer(Path(sys.argv[1]), sys.argv[2] or None, "123456")
    except AgentError as error:
        print(type(error).__name__)
        print(error)
    else:
        print("opened")
    """
)


def _open_in_child(env: dict[str, str], uri: str = "", user: int | None = None) -> str:
    command = [sys.executable, "-c", _OPEN, str(SOFTHSM_MODULE), uri]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, cwd=REPO, timeout=60, check=False
    )
    return done.stdout + done.stderr


def _softhsm_conf(directory: Path) -> Path:
    tokens = directory / "tokens"
    tokens.mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    return conf


def test_a_blank_token_is_reported_as_not_initialised(tmp_path: Path) -> None:
    conf = _softhsm_conf(tmp_path)  # no token ever initialised: only SoftHSM's blank slot
    output = _open_in_child(dict(os.environ, SOFTHSM2_CONF=str(conf)))
    assert output.startswith("TokenNotInitialized"), output
    assert "softhsm2-util --init-token" in output
    assert "PIN" not in output


def test_an_unreadable_token_store_is_access_denied_not_a_pin_error() -> None:
    # A directory "nobody" can search, holding a token directory only root may use.
    with tempfile.TemporaryDirectory(prefix="edgeagent-store-") as name:
        root = Path(name)
        root.chmod(0o755)
        conf = _softhsm_conf(root)
        conf.chmod(0o644)
        (root / "tokens").chmod(0o700)
        init = subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                "locked",
                "--pin",
                "123456",
                "--so-pin",
                "12345678",
            ],
            env=dict(os.environ, SOFTHSM2_CONF=str(conf)),
            capture_output=True,
            check=False,
        )
        assert init.returncode == 0, init.stderr
        output = _open_in_child(dict(os.environ, SOFTHSM2_CONF=str(conf)), user=65534)
    assert output.startswith("TokenAccessDenied"), output
    assert "tokens" in output and "permission denied" in output
    assert "PIN" not in output


def test_per_key_pin_wins_and_a_wrong_one_names_its_setting(
    softhsm_token: SoftHsmToken,
) -> None:
    key = softhsm_token.generate_key("ec-p256")
    signer = open_module_signer(
        SOFTHSM_MODULE,
        key.uri,
        "not-the-pin",
        key_pin=softhsm_token.pin,
        key_pin_key="c8y.device.key_pin",
    )
    signer.close()
    with pytest.raises(PinIncorrect) as caught:
        open_module_signer(
            SOFTHSM_MODULE,
            key.uri,
            softhsm_token.pin,
            key_pin="000000",
            key_pin_key="c8y.device.key_pin",
        )
    assert "c8y.device.key_pin" in caught.value.fix
    assert "000000" not in str(caught.value)


def test_pin_source_file_logs_in(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    key = softhsm_token.generate_key("ec-p256")
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm_token.pin + "\n")
    pin_file.chmod(0o600)
    with open_module_signer(SOFTHSM_MODULE, f"{key.uri}?pin-source={pin_file}", None) as signer:
        assert signer.public_key() == key.public_key


def test_module_path_in_the_uri_loads_that_module(softhsm_token: SoftHsmToken) -> None:
    from edgeagent.pkcs11.modules import module_for
    from edgeagent.pkcs11.uri import Pkcs11Uri

    key = softhsm_token.generate_key("ec-p256")
    text = f"{key.uri}?module-path={SOFTHSM_MODULE}"
    module = module_for(Pkcs11Uri.parse(text), None)
    with open_module_signer(module, text, softhsm_token.pin) as signer:
        assert signer.public_key() == key.public_key

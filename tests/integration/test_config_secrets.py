"""Issue 13 part 5: a PIN given to `agent config set` never shows in /proc/<pid>/cmdline.

The attack: any user reads every process's arguments. The fixed `config set`
takes a secret from standard input (``-``), ``--from-file`` or a prompt, and
refuses one given as an argument, saying how to give it instead.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from edgeagent import errors
from tests.support.agent_cli import AGENT, exit_code, run_agent

PIN = "739184"


def _cmdlines_of_others() -> list[bytes]:
    seen = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                seen.append((entry / "cmdline").read_bytes())
            except OSError:
                continue
    return seen


def test_a_pin_piped_in_never_reaches_any_command_line(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc-agent"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    child = subprocess.Popen(
        [str(AGENT), "--config-dir", str(config_dir), "config", "set", "device.cryptoki.pin", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert child.stdin is not None
    # Watch every process's arguments while the command runs and reads the PIN.
    leaked = []
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        leaked += [line for line in _cmdlines_of_others() if PIN.encode() in line]
    child.stdin.write(f"{PIN}\n".encode())
    child.stdin.close()
    while child.poll() is None:
        leaked += [line for line in _cmdlines_of_others() if PIN.encode() in line]
    assert child.returncode == 0, child.stderr.read() if child.stderr else ""
    assert leaked == []
    done = run_agent("config", "get", "device.cryptoki.pin", "--reveal", config_dir=config_dir)
    assert done.stdout == f"{PIN}\n"
    assert (config_dir / "agent.toml").stat().st_mode & 0o777 == 0o600


def test_a_pin_from_a_file(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc-agent"
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    done = run_agent(
        "config", "set", "device.key_pin", "--from-file", str(pin_file), config_dir=config_dir
    )
    assert done.returncode == 0, done.stderr
    done = run_agent("config", "get", "device.key_pin", "--reveal", config_dir=config_dir)
    assert done.stdout == f"{PIN}\n"


def test_a_pin_as_an_argument_is_refused_with_the_other_ways(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc-agent"
    done = run_agent("config", "set", "device.cryptoki.pin", PIN, config_dir=config_dir)
    assert done.returncode == exit_code(errors.UsageError), done.stderr
    assert "device.cryptoki.pin is secret" in done.stderr
    for way in (
        "agent config set device.cryptoki.pin\n",
        "agent config set device.cryptoki.pin - < FILE",
        "--from-file FILE",
    ):
        assert way in done.stderr
    assert PIN not in done.stderr + done.stdout
    assert not (config_dir / "agent.toml").exists()


def test_no_terminal_no_value_says_how(tmp_path: Path) -> None:
    done = run_agent("config", "set", "c8y.device.key_pin", config_dir=tmp_path / "etc")
    assert done.returncode == exit_code(errors.UsageError)
    assert "no terminal to ask for it" in done.stderr
    assert "--from-file FILE" in done.stderr


def test_a_pin_value_in_a_configured_key_uri_is_refused_and_not_echoed(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc-agent"
    uri = f"pkcs11:token=t;object=k?pin-value={PIN}"
    done = run_agent("config", "set", "device.key_uri", uri, config_dir=config_dir)
    assert done.returncode == exit_code(errors.InvalidConfigValue), done.stderr
    assert "must not hold a pin-value" in done.stderr and "device.key_pin" in done.stderr
    assert PIN not in done.stderr + done.stdout
    # Written by hand into agent.toml: refused too, and still not echoed.
    config_dir.mkdir()
    (config_dir / "agent.toml").write_text(f'[device]\nkey_uri = "{uri}"\n')
    done = run_agent("config", "list", config_dir=config_dir)
    assert done.returncode == exit_code(errors.InvalidConfigValue)
    assert PIN not in done.stderr + done.stdout


def test_the_doc_example_shows_no_pin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgeagent", "config", "list", "--doc", "device.cryptoki"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "example: agent config set device.cryptoki.pin (asks without echo)" in done.stdout


def test_a_pin_typed_at_the_prompt_is_not_echoed(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc-agent"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    argv = [str(AGENT), "--config-dir", str(config_dir), "config", "set", "device.key_pin"]
    pid, terminal = pty.fork()  # the child's controlling terminal: getpass reads it
    if pid == 0:
        os.execve(argv[0], argv, env)
    screen = b""
    try:
        for prompt in (b"device.key_pin: ", b"device.key_pin again: "):
            screen += _read_until(terminal, prompt)
            os.write(terminal, f"{PIN}\n".encode())
        screen += _read_until(terminal, None)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert PIN.encode() not in screen  # no echo
    done = run_agent("config", "get", "device.key_pin", "--reveal", config_dir=config_dir)
    assert done.stdout == f"{PIN}\n"


def _read_until(fd: int, wanted: bytes | None, timeout: float = 30) -> bytes:
    """What the terminal shows until ``wanted`` (None: until the child closes it)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the child has exited
            return seen
        if not chunk:
            return seen
        seen += chunk
        if wanted is not None and seen.endswith(wanted):
            return seen
    raise AssertionError(f"the terminal showed {seen!r}, not {wanted!r}")

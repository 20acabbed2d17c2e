"""The real `agent` command in a subprocess, as a user runs it: the one runner.

    done = run_agent("config", "get", "c8y.url", config_dir=tmp_path / "etc-agent")
    assert done.returncode == 0, done.stderr
    assert done.returncode == exit_code(errors.PinIncorrect)

The child sees this process's environment less every ``AGENT_*`` variable
(a developer's own settings must not leak into a test), then the test's
``env``, then ``AGENT_CONFIG_DIR`` when ``config_dir`` is given. Its stdin
is ``stdin`` (text) or /dev/null: never a terminal, so nothing prompts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from edgeagent import errors
from edgeagent.cli.exit_codes import exit_code_for

AGENT = Path(sys.executable).with_name("agent")
"""The `agent` script of the interpreter running the tests (the project's venv)."""


def run_agent(
    *args: str,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``agent *args`` to the end; its exit code, stdout and stderr (text)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    child_env.update(env or {})
    if config_dir is not None:
        child_env["AGENT_CONFIG_DIR"] = str(config_dir)
    return subprocess.run(
        [str(AGENT), *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env=child_env,
        timeout=timeout,
        check=False,
    )


def exit_code(cls: type[errors.AgentError]) -> int:
    """The `agent` command's exit code for an error class (edgeagent/cli/exit_codes.py)."""
    return exit_code_for(cls("x"))

"""`agent --version`: the installed package's version, exit 0."""

from __future__ import annotations

from importlib.metadata import version

from tests.support.agent_cli import run_agent


def test_agent_version_prints_the_package_version() -> None:
    done = run_agent("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"agent {version('edgeagent')}\n"
    assert done.stderr == ""

"""The test process's own environment.

Fixture ``no_agent_environment``: every ``AGENT_*`` variable removed for the
test (restored after), so a developer's settings never change what an
in-process configuration test reads. Modules that read the configuration
in-process say so once:

    pytestmark = pytest.mark.usefixtures("no_agent_environment")

(The `agent` subprocess runner strips them on its own: tests/support/agent_cli.py.)
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def no_agent_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``AGENT_*`` variable in ``os.environ`` during the test."""
    for name in list(os.environ):
        if name.startswith("AGENT_"):
            monkeypatch.delenv(name)

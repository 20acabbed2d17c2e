"""What ships beside the code says what the code does: no PIN on a command line, a modern licence.

- Every `agent config set <secret key>` the README, docs/ and packaging/
  show gives its value the way the rule above it says: a prompt, `-` (stdin)
  or `--from-file`, never as an argument (issue 12 part 9).
- pyproject.toml declares its licence as an SPDX expression with the licence
  file, which setuptools >= 77 reads without its "project.license as a TOML
  table is deprecated" warning (printed three times per `scripts/setup.sh`).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from edgeagent.config.keys import all_keys

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TEXT = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "packaging").glob("*.md")]
)
SECRET_KEYS = {spec.name for spec in all_keys() if spec.secret}
CONFIG_SET = re.compile(r"\bagent\b(?:\s+--config-dir\s+\S+)?\s+config\s+set\s+(?P<rest>[^\n`]*)")


def secret_values_on_argv(text: str) -> list[str]:
    """Each `agent config set KEY VALUE` line in ``text`` that puts a secret on argv."""
    found = []
    for match in CONFIG_SET.finditer(text):
        command = match.group("rest").split("#", 1)[0]
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        if not words or words[0] not in SECRET_KEYS:
            continue
        ends = [i for i, word in enumerate(words) if word[0] in "<>|&;"]
        words = words[: ends[0]] if ends else words
        values = [word for word in words[1:] if not word.startswith("--") and word != "-"]
        options = [word for word in words[1:] if word.startswith("--")]
        if values and "--from-file" not in options:
            found.append(match.group(0).strip())
    return found


def test_the_check_finds_a_pin_on_the_command_line() -> None:
    assert secret_values_on_argv("    agent config set device.cryptoki.pin 123456\n") == [
        "agent config set device.cryptoki.pin 123456"
    ]
    assert secret_values_on_argv("agent --config-dir /d config set c8y.device.key_pin 42\n")
    for fine in (
        "agent config set device.cryptoki.pin                # asks for the PIN",
        "agent config set device.cryptoki.pin - < pin-file",
        "agent config set device.cryptoki.pin --from-file pin",
        "agent config set device.key_uri pkcs11:token=t",
    ):
        assert secret_values_on_argv(fine) == [], fine


@pytest.mark.parametrize("path", SHIPPED_TEXT, ids=lambda p: str(p.relative_to(REPO)))
def test_no_document_puts_a_pin_on_the_command_line(path: Path) -> None:
    assert secret_values_on_argv(path.read_text()) == []


def test_the_licence_is_an_spdx_expression_with_its_file() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    files = project["project"]["license-files"]
    assert files and all((REPO / name).is_file() for name in files)
    assert "Apache License" in (REPO / files[0]).read_text()[:200]
    requires = project["build-system"]["requires"]
    setuptools = next(r for r in requires if r.startswith("setuptools"))
    minimum = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools)
    assert minimum is not None and int(minimum.group(1)) >= 77, setuptools

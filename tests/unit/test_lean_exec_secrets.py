"""What the lean runtimes do to keep the PIN out of memory images and /proc."""

from __future__ import annotations

import subprocess
import sys

from edgeagent.config.keys import all_keys
from edgeagent.lean_exec import without_pins

# Run in a child: the flags cannot be undone in the test process itself.
_REPORT_FLAGS = """
import ctypes, resource
from edgeagent.lean_exec import keep_secrets_out_of_dumps
keep_secrets_out_of_dumps()
libc = ctypes.CDLL(None)
print(libc.prctl(3, 0, 0, 0, 0), *resource.getrlimit(resource.RLIMIT_CORE))
"""


def test_a_process_that_keeps_secrets_is_not_dumpable_and_dumps_no_core() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_FLAGS], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["0", "0", "0"]  # PR_GET_DUMPABLE, soft, hard


def test_every_secret_configuration_variable_is_dropped_from_the_environment() -> None:
    secrets = [spec.env_var for spec in all_keys() if spec.secret]
    assert "AGENT_DEVICE_CRYPTOKI_PIN" in secrets
    environ = {name: "1234" for name in secrets} | {
        "AGENT_CONFIG_DIR": "/etc/agent",
        "AGENT_C8Y_URL": "example.com",
        "SPINNER": "x",
        "PATH": "/usr/bin",
    }
    kept = without_pins(environ)
    assert not set(secrets) & set(kept)
    assert {"AGENT_CONFIG_DIR", "AGENT_C8Y_URL", "SPINNER", "PATH"} <= set(kept)

"""Wall time of one CLI command vs the interpreter doing nothing.

``agent --config-dir D config get device.cryptoki.mode`` (the venv's console
script, a real config file) against ``python -c pass`` on the same
interpreter; runs alternate, medians of ``runs`` after warm-ups.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeagent.config import set_value
from integration.bench.testbed import AGENT

WARMUP = 2


def _wall(command: list[str]) -> float:
    started = time.perf_counter_ns()
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return (time.perf_counter_ns() - started) / 1e6


def run(config_dir: Path, runs: int) -> dict[str, Any]:
    set_value(config_dir, "device.cryptoki.mode", "module")
    agent = [str(AGENT), "--config-dir", str(config_dir), "config", "get", "device.cryptoki.mode"]
    python = [sys.executable, "-c", "pass"]
    for _ in range(WARMUP):
        _wall(agent)
        _wall(python)
    agent_ms: list[float] = []
    python_ms: list[float] = []
    for _ in range(runs):
        agent_ms.append(_wall(agent))
        python_ms.append(_wall(python))
    return {
        "runs": runs,
        "command": " ".join(["agent", "--config-dir", "D", *agent[3:]]),
        "agent_median_ms": statistics.median(agent_ms),
        "python_median_ms": statistics.median(python_ms),
        "agent_ms": sorted(agent_ms),
        "python_ms": sorted(python_ms),
    }

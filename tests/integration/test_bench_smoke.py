"""The benchmark harness still runs: `python -m integration.bench --size smoke`.

Not a timed test: it checks that every row of the table was measured, not
that any target is met. QoS 1 losing nothing is correctness, so that one is
asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_smoke_run_measures_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("SOFTHSM2_CONF", None)  # the harness makes its own token directory
    done = subprocess.run(
        [sys.executable, "-m", "integration.bench", "--size", "smoke", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())

    table = results["table"]
    assert len(table) >= 14
    for row in table:
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
        assert row["agent"] and row["anchor"], row
    # The markdown table on stdout has the same rows.
    printed = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(printed) == len(table) + 1  # + the header

    for name, run in results["throughput"].items():
        assert run["received"] > 0, name
        if run["qos"] == 1:
            assert run["lost"] == 0, f"{name} lost {run['lost']} of {run['sent']} at QoS 1"
    for name, run in results["latency"].items():
        assert run["counted"] > 0 and run["p99_ms"] >= run["p50_ms"] > 0, name
    for name, run in results["signing"].items():
        assert run["per_s"] > 0, name
    for name, figure in results["memory"].items():
        assert figure["rss_kib"] > 0, name
    machine = results["machine"]
    assert machine["nproc"] and machine["python"] and "mosquitto" in machine["mosquitto"]

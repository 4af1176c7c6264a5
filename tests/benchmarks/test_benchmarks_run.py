"""Every benchmark runs end to end on tiny sizes (``python -m benchmarks --write FILE``, a real sandbox,
real processes), so a change to the client or the operators that breaks one shows up here, not at the
next ``make bench``. Figures are not checked: timings belong to the benchmarks, not to tests.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import available, section

ROOT = Path(__file__).resolve().parents[2]
# The http provider comes with the bench extra (`make bench`), not with the test install.
NEEDS_PEER = {"versus_http", "import_cost", "triggerer_real"}
TINY = {
    "SANDBOX_BENCH_SECONDS": "0.2",
    "VERSUS_BENCH_TASKS": "4",
    "VERSUS_BENCH_CALLS": "5",
    "IMPORT_BENCH_RUNS": "1",
    "TOKEN_BENCH_PROCESSES": "2",
    "TOKEN_BENCH_CALLS": "3",
    "TOKEN_DAY_HOUR": "1",
    "TOKEN_DAY_RUNS": "2",
    "CLUSTER_DAY_RUNS": "1",
    "THROUGHPUT_BENCH_ACCOUNTS": "16",
    "THROUGHPUT_BENCH_LATENCY": "0.001",
    "TRIGGERER_BENCH_SIZES": "3",
    "TRIGGERER_BENCH_INTERVAL": "0.3",
    "TRIGGERER_BENCH_SECONDS": "1",
    "TRIGGERER_REAL_SIZES": "2",
    "TRIGGERER_REAL_INTERVAL": "1",
    "TRIGGERER_REAL_SECONDS": "1",
    "MEMORY_BENCH_ACCOUNTS": "8,16",
    "PAGE_WALK_PAGES": "1,2",
}


@pytest.mark.bench
@pytest.mark.slow  # runs the benchmarks in processes of their own
def test_every_benchmark_runs_on_tiny_sizes_and_writes_its_section(tmp_path):
    peer = importlib.util.find_spec("airflow.providers.http") is not None
    names = [name for name in available() if peer or name not in NEEDS_PEER]
    report = tmp_path / "BENCHMARKS.md"

    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--write", str(report), *names],
        cwd=ROOT,
        env={**os.environ, **TINY},
        capture_output=True,
        text=True,
        timeout=340,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-4000:]
    text = report.read_text()
    for name in names:
        assert f"## {section(name)[0]}\n" in text, name
    assert "nan" not in text.lower().replace("nanoseconds", "")
    assert "Traceback" not in text

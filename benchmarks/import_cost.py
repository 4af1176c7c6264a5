"""Import cost: what importing each provider module adds to a DAG file's parse.

The DAG processor imports a DAG file's modules on every parse, so the provider's modules must stay
light: no HTTP client, no certificate loading, no connection read at import. Each measurement is a
fresh interpreter (``python -X importtime`` would count cached modules once only) that first imports
``airflow.sdk`` (every DAG file does), then the module; the figure is the median over RUNS processes
of the second import's wall time, with the heavy modules it pulled in that ``airflow.sdk`` had not.

Run: ``python -m benchmarks import_cost`` (``IMPORT_BENCH_RUNS``, default 7).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys

RUNS = int(os.environ.get("IMPORT_BENCH_RUNS", "7"))
MODULES = (
    "airflow_provider_bankapi.get_provider_info",
    "airflow_provider_bankapi.hooks.bankapi",
    "airflow_provider_bankapi.operators.bankapi",
    "airflow_provider_bankapi.sensors.bankapi",
    "airflow_provider_bankapi.triggers.bankapi",
    "airflow_provider_bankapi.client.api",
)
# Modules whose presence after the import means a DAG file pays for the HTTP/TLS stack.
HEAVY = ("requests", "urllib3", "cryptography", "airflow_provider_bankapi.client.api")

PROBE = """
import json, sys, time
import airflow.sdk
before = set(sys.modules)
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
added = set(sys.modules) - before
print(json.dumps({{"ms": elapsed * 1000, "added": len(added),
                  "heavy": sorted(h for h in {heavy!r} if h in added)}}))
"""


def measure(module: str) -> dict[str, object]:
    runs = []
    for _ in range(RUNS):
        code = PROBE.format(module=module, heavy=HEAVY)
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "ms": statistics.median(float(r["ms"]) for r in runs),
        "added": runs[-1]["added"],
        "heavy": runs[-1]["heavy"],
    }


def main() -> None:
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; median of {RUNS} fresh processes.\n")
    print("| module | import after airflow.sdk | modules added | heavy modules added |")
    print("|---|---|---|---|")
    for module in MODULES:
        m = measure(module)
        heavy = ", ".join(m["heavy"]) or "none"  # type: ignore[arg-type]
        print(f"| `{module}` | {m['ms']:.1f} ms | {m['added']} | {heavy} |", flush=True)


if __name__ == "__main__":
    main()

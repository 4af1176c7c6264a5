"""Import cost: what importing each provider module adds to a DAG file's parse, ours beside the http
provider's.

The DAG processor imports a DAG file's modules on every parse, so the provider's modules must stay
light: no HTTP client, no certificate loading, no connection read at import. Each measurement is a
process forked from one that has imported ``airflow.sdk`` (every DAG file does; Airflow 3 forks its
parsing processes the same way), which then imports the module; the figure is the median over RUNS
processes of that import's wall time, with the heavy modules it pulled in that ``airflow.sdk`` had not.

Run: ``python -m benchmarks import_cost`` (``IMPORT_BENCH_RUNS``, default 7).
"""

from __future__ import annotations

import importlib
import os
import sys
import time

from benchmarks._measure import in_processes, machine, median, ratio

TITLE = "Import cost"
ABOUT = """
The DAG processor imports a DAG file's modules at every parse, so the provider's modules must not
pull in the HTTP stack or read anything at import time.

Command: `.venv/bin/python -m benchmarks import_cost` (`IMPORT_BENCH_RUNS=7` by default)

Each figure is the median over 7 processes, each forked from a parent that has imported
`airflow.sdk` (which every DAG file pays anyway, and which Airflow 3's DAG processor has imported
before it forks a parsing process), of the wall time of `import <module>`, with the number of modules
it added and which of requests, urllib3, cryptography, aiohttp and our client it pulled in. The last
table sets the modules a DAG file imports to use operators and sensors beside the http provider's.
`get_provider_info` costs nothing because `airflow.sdk`'s provider discovery has imported it already.
The operators, sensors and trigger defer the client (and with it requests and urllib3) to the first
call in a task; the sensor's and trigger's own cost is mostly Airflow's sensor and trigger base classes.
"""

RUNS = int(os.environ.get("IMPORT_BENCH_RUNS", "7"))
MODULES = (
    "airflow_provider_bankapi.get_provider_info",
    "airflow_provider_bankapi.hooks.bankapi",
    "airflow_provider_bankapi.operators.bankapi",
    "airflow_provider_bankapi.sensors.bankapi",
    "airflow_provider_bankapi.triggers.bankapi",
    "airflow_provider_bankapi.client.api",
)
# Ours beside the http provider's: what a DAG file imports to use the operators, or the sensors.
PAIRS = (
    ("operators", "airflow_provider_bankapi.operators.bankapi", "airflow.providers.http.operators.http"),
    ("sensors", "airflow_provider_bankapi.sensors.bankapi", "airflow.providers.http.sensors.http"),
)
# Modules whose presence after the import means a DAG file pays for the HTTP/TLS stack.
HEAVY = ("requests", "urllib3", "cryptography", "aiohttp", "airflow_provider_bankapi.client.api")


def import_once(module: str) -> dict[str, object]:
    """In a fresh fork: import ``module``; its wall time, the modules it added, the heavy ones among them."""
    before = set(sys.modules)
    started = time.perf_counter()
    importlib.import_module(module)
    elapsed = time.perf_counter() - started
    added = set(sys.modules) - before
    return {"ms": elapsed * 1000, "added": len(added), "heavy": sorted(h for h in HEAVY if h in added)}


def measure(module: str) -> dict[str, object]:
    runs = in_processes(import_once, [module] * RUNS)
    return {
        "ms": median(float(r["ms"]) for r in runs),  # type: ignore[arg-type]
        "added": runs[-1]["added"],
        "heavy": runs[-1]["heavy"],
    }


def main() -> None:
    import airflow.sdk  # noqa: F401 - the parent every measurement forks from

    print(f"{machine()}; median of {RUNS} forked processes.\n")
    print("| module | import after airflow.sdk | modules added | heavy modules added |")
    print("|---|---|---|---|")
    for module in MODULES:
        m = measure(module)
        heavy = ", ".join(m["heavy"]) or "none"  # type: ignore[arg-type]
        print(f"| `{module}` | {m['ms']:.1f} ms | {m['added']} | {heavy} |", flush=True)
    print("\n| what a DAG file imports | ours | http provider | ours vs http provider |")
    print("|---|---:|---:|---:|")
    for label, ours, theirs in PAIRS:
        mine, peer = measure(ours), measure(theirs)
        print(
            f"| {label} (`{theirs.rsplit('.', 2)[-2]}.{theirs.rsplit('.', 1)[-1]}` for the http provider) | "
            f"{mine['ms']:.1f} ms, {mine['added']} modules | {peer['ms']:.1f} ms, {peer['added']} modules "
            f"({', '.join(peer['heavy']) or 'nothing heavy'}) | "  # type: ignore[arg-type]
            f"{ratio(float(mine['ms']), float(peer['ms']))} |",  # type: ignore[arg-type]
            flush=True,
        )

"""Throughput against the ideal: N balances through ``BankingApiBalanceOperator`` at a bank latency the
sandbox injects, at several ``max_workers``, each as a ratio to ``latency x N / workers``.

Run: ``python -m benchmarks throughput`` (``THROUGHPUT_BENCH_ACCOUNTS``, default 1000;
``THROUGHPUT_BENCH_LATENCY``, default 0.025 s).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from benchmarks._measure import RUNS, cpu_seconds, machine, median
from benchmarks._sandbox import server_pid, serving, use_connection

if TYPE_CHECKING:
    from bankapi_sandbox import Sandbox

TITLE = "Throughput against the ideal"
ABOUT = """
How close one task gets to what the bank's latency allows: `BankingApiBalanceOperator` fetching 1,000
balances from a sandbox that waits 25 ms before every answer, at `max_workers` 1, 8 and 16. The ideal
is `latency x N / workers` (no cost but the bank's wait); the goal is at most 1.25x of it.

Command: `.venv/bin/python -m benchmarks throughput` (`THROUGHPUT_BENCH_ACCOUNTS`, `THROUGHPUT_BENCH_LATENCY`)

The operator runs in the benchmark's process (`execute()`, output to XCom), one token fetched before
the first run; the sandbox in its own process. Besides the wall time, the CPU seconds each side used
during the run (the client's threads share one GIL; the sandbox serves every call in a thread of its
own) and the TLS connections opened show where the time beyond the ideal goes. The same runs at zero
latency give the cost per call that no waiting hides.

Reading it: one worker pays the bank's latency plus the full cost of a call each time; many workers
overlap the waits, and what is left is the client's own work per call (requests and urllib3 building
and parsing each request, the token cache check, JSON), done under one GIL whatever `max_workers` is,
and the sandbox's (a thread per connection) on the other core. Past the point where latency / workers
nears that cost per call, more workers only add contention. What would close the rest: less Python work
per call (a leaner HTTP stack or an async client), or the balances split over several task processes
(mapped tasks), each with its own GIL, sharing the one token through the host store.
"""

ACCOUNTS = int(os.environ.get("THROUGHPUT_BENCH_ACCOUNTS", "1000"))
LATENCY = float(os.environ.get("THROUGHPUT_BENCH_LATENCY", "0.025"))
WORKERS = (1, 8, 16)


def _once(sandbox: Sandbox, workers: int, pid: int) -> dict[str, Any]:
    from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator

    operator = BankingApiBalanceOperator(
        task_id=f"balances_{workers}", account_ids=[str(n) for n in range(ACCOUNTS)], max_workers=workers
    )
    sandbox.reset_counters()
    client_cpu, server_cpu = cpu_seconds(), cpu_seconds(pid)
    started = time.perf_counter()
    result = operator.execute({})  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    if len(result) != ACCOUNTS:
        raise RuntimeError(f"{len(result)} balances of {ACCOUNTS}")
    return {
        "wall": wall,
        "client_cpu": cpu_seconds() - client_cpu,
        "server_cpu": cpu_seconds(pid) - server_cpu,
        **sandbox.counters(),
    }


def _table(sandbox: Sandbox, latency: float) -> dict[int, dict[str, float]]:
    sandbox.set_latency(latency)
    pid = server_pid(sandbox)
    medians: dict[int, dict[str, float]] = {}
    for workers in WORKERS:
        runs = [_once(sandbox, workers, pid) for _ in range(RUNS)]
        medians[workers] = {
            key: median(float(r[key]) for r in runs) for key in ("wall", "client_cpu", "server_cpu")
        }
        medians[workers]["tls"] = runs[-1]["tls_connections"]
        medians[workers]["tokens"] = runs[-1]["tokens_issued"]
    return medians


def main() -> None:
    from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

    print(f"{machine()}; {ACCOUNTS} balances per run, median of {RUNS} runs.\n")
    with serving() as sandbox:
        use_connection(sandbox, cache_scope="process")
        BankingApiHook().get_token()  # the task's token, before the clock starts
        idle = _table(sandbox, 0.0)
        loaded = _table(sandbox, LATENCY)
    print(
        f"| max_workers | ideal s ({LATENCY * 1000:g} ms x N / workers) | wall s | wall vs ideal | "
        "client CPU s | sandbox CPU s | TLS connections | wall s at 0 ms latency |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers in WORKERS:
        ideal = LATENCY * ACCOUNTS / workers
        m = loaded[workers]
        print(
            f"| {workers} | {ideal:.2f} | {m['wall']:.2f} | **{m['wall'] / ideal:.2f}x** | "
            f"{m['client_cpu']:.2f} | "
            f"{m['server_cpu']:.2f} | {m['tls']:.0f} | {idle[workers]['wall']:.2f} |",
            flush=True,
        )
    per_call = {w: idle[w]["wall"] / ACCOUNTS * 1000 for w in WORKERS}
    cpu_per_call = idle[1]["client_cpu"] / ACCOUNTS * 1000
    print(
        f"\nAt zero latency a call costs {per_call[1]:.2f} ms of wall time one at a time "
        f"({cpu_per_call:.2f} ms of client CPU), {per_call[16]:.2f} ms with 16 workers: that is the floor "
        f"no concurrency removes on this "
        f"machine (the client's threads share one GIL, the sandbox's share the other core). With "
        f"{LATENCY * 1000:g} ms of latency, 16 workers would need {LATENCY * 1000 / 16:.2f} ms per call, "
        f"so the overhead per call is what separates the wall time from the ideal."
    )

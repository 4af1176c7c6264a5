"""One triggerer's capacity: N deferred ``BankingApiBalanceSensor`` triggers polling the sandbox in one
process, their ``run()`` coroutines on one event loop as Airflow's triggerer runs them.

Run: ``python -m benchmarks triggerer_capacity`` (``TRIGGERER_BENCH_SIZES``, default 100,500,1000;
``TRIGGERER_BENCH_INTERVAL``, the poke interval, default 5 s; ``TRIGGERER_BENCH_SECONDS``, default 20).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from benchmarks._measure import (
    cpu_seconds,
    fresh_host_cache,
    in_processes,
    machine,
    median,
    peak_rss_mb,
    percentile,
    rss_mb,
)
from benchmarks._sandbox import server_pid, serving, use_connection

if TYPE_CHECKING:
    from bankapi_sandbox import Sandbox

TITLE = "One triggerer's capacity"
ABOUT = """
How many deferred sensors one triggerer process carries: 100, 500 and 1,000 `BankingApiBalanceSensor`
triggers polling the sandbox, each size in a process of its own that runs the triggers' `run()`
coroutines on one asyncio event loop, as Airflow's triggerer does (`asyncio.run`, the loop's default
thread pool for the blocking calls, a watchdog that sleeps 100 ms and counts the overshoot as lag).

Command: `.venv/bin/python -m benchmarks triggerer_capacity` (`TRIGGERER_BENCH_SIZES`,
`TRIGGERER_BENCH_INTERVAL`, `TRIGGERER_BENCH_SECONDS`)

A worker process first runs one deferrable sensor for real (`execute()`: its first look at the
balance, then `defer()`), fetching the token into the host store; its trigger's serialized kwargs are
then rebuilt by class path once per account, as the triggerer rebuilds triggers from the database,
each deferred at a random moment within one poke interval (sensors do not all defer at once). The
threshold is never met, so every trigger polls until the end. Lag is the watchdog's overshoot over the
whole run (start-up included: every trigger reads its connection and loads its client identity in a
thread); requests per interval are the sandbox's counter per poke interval after the first one, next to
the N a keep-up triggerer makes; RSS is the process's at the end and its peak. The knee is the smallest
size whose p99 lag passes 1 s. The CPU column is each process's CPU time over the run's wall time
(100 % = one core); "ended early" counts triggers that fired an event (an error) instead of polling on.

Reading it: every blocking step of a poll runs in the loop's thread pool (6 threads on 2 CPUs, as in
the triggerer), so the loop itself stays responsive and the lag grows slowly; the first limit is the
pool's throughput: when a poll waits for a free thread, a trigger's interval stretches and the
requests per interval fall below N. On a busy machine that happens early: when the requests fall
below N while the CPU column stays well under one core, the process was waiting for CPU time that
other work held (compare the load average), not for the bank. The triggers of one connection share
one client (one identity load, one token, one SSLContext): the TLS connections column counts the
mTLS connections the sandbox accepted over the run, at most one per thread of the pool, whatever
the number of triggers. Tokens come from the host store the worker filled: none is fetched.
"""

SIZES = tuple(int(n) for n in os.environ.get("TRIGGERER_BENCH_SIZES", "100,500,1000").split(","))
INTERVAL = float(os.environ.get("TRIGGERER_BENCH_INTERVAL", "5"))
SECONDS = float(os.environ.get("TRIGGERER_BENCH_SECONDS", "20"))
NEVER = "1000000000000"  # a threshold no sandbox balance meets: the triggers poll until stopped
WATCHDOG = 0.1  # the triggerer's watchdog period
STOP_TIMEOUT = 60.0


def defer_once(account: str) -> tuple[str, dict[str, Any]]:
    """A worker's task: the sensor's first look, then its deferral; the trigger it hands over."""
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_bankapi.sensors.bankapi import BankingApiBalanceSensor

    sensor = BankingApiBalanceSensor(
        task_id="wait_for_funds",
        account_id=account,
        threshold=NEVER,
        deferrable=True,
        poke_interval=INTERVAL,
        timeout=3600,
    )
    try:
        sensor.execute({})  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        classpath, kwargs = deferred.trigger.serialize()
        return classpath, kwargs
    raise RuntimeError("the sensor did not defer")


async def _run(size: int, serialized: tuple[str, dict[str, Any]], sandbox: Sandbox) -> dict[str, Any]:
    from airflow.sdk.module_loading import import_string

    classpath, kwargs = serialized
    trigger_class = import_string(classpath)
    started = time.time()
    triggers = [
        trigger_class(
            **{
                **kwargs,
                "endpoint": f"/accounts/{number}/balance",
                "next_poll_at": started + random.uniform(0, INTERVAL),
            }
        )
        for number in range(size)
    ]
    lags: list[float] = []
    ended: Counter[str] = Counter()
    counts: list[int] = []
    stop = asyncio.Event()
    control = ThreadPoolExecutor(1)  # the sandbox's counters, kept off the triggers' thread pool
    loop = asyncio.get_running_loop()

    async def watchdog() -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(WATCHDOG)
            lags.append(time.monotonic() - before - WATCHDOG)

    async def sample() -> None:
        await loop.run_in_executor(control, sandbox.reset_counters)
        while not stop.is_set():
            await asyncio.sleep(INTERVAL)
            counters = await loop.run_in_executor(control, sandbox.counters)
            counts.append(counters["api_requests"])

    async def run_trigger(trigger: Any) -> None:
        async for event in trigger.run():  # an event ends a trigger: here only an error can
            ended[str(event.payload.get("error_type") or event.payload.get("status"))] += 1
            return

    rss_before = rss_mb()
    server = server_pid(sandbox)
    cpu_start, server_cpu_start, wall_start = cpu_seconds(), cpu_seconds(server), time.monotonic()
    tasks = [asyncio.create_task(run_trigger(trigger)) for trigger in triggers]
    watching = [asyncio.create_task(watchdog()), asyncio.create_task(sample())]
    await asyncio.sleep(SECONDS)
    stop.set()
    rss_end = rss_mb()
    wall = time.monotonic() - wall_start
    cpu, server_cpu = cpu_seconds() - cpu_start, cpu_seconds(server) - server_cpu_start
    for task in tasks:
        task.cancel()
    # Bounded: a trigger stuck in a call must not hold the benchmark (the transport's timeouts end it).
    await asyncio.wait([*tasks, *watching], timeout=STOP_TIMEOUT)
    final = await loop.run_in_executor(control, sandbox.counters)
    control.shutdown()
    per_interval = [later - earlier for earlier, later in zip(counts, counts[1:], strict=False)]
    return {
        "lag_p50": percentile(lags, 50),
        "lag_p99": percentile(lags, 99),
        "lag_max": max(lags),
        "requests": median(per_interval) if per_interval else float("nan"),
        "rss_before": rss_before,
        "rss_end": rss_end,
        "rss_peak": peak_rss_mb(),
        "tokens": final["tokens_issued"],
        "tls_connections": final["tls_connections"],
        "cpu": cpu / wall,
        "server_cpu": server_cpu / wall,
        "ended": ", ".join(f"{count} {kind}" for kind, count in ended.most_common()) or "none",
    }


def triggerer(arguments: tuple[int, tuple[str, dict[str, Any]], str]) -> dict[str, Any]:
    """One triggerer process carrying ``size`` triggers for SECONDS."""
    from bankapi_sandbox import Sandbox

    size, serialized, directory = arguments
    return asyncio.run(_run(size, serialized, Sandbox.attach(directory)))


def main() -> None:
    # What a triggerer has imported before it runs a trigger.
    import airflow_provider_bankapi.hooks.bankapi  # noqa: F401
    import airflow_provider_bankapi.sensors.bankapi  # noqa: F401
    import airflow_provider_bankapi.triggers.bankapi  # noqa: F401

    print(f"{machine()}; poke interval {INTERVAL:g} s, {SECONDS:g} s per size.\n")
    rows = []
    with serving() as sandbox, fresh_host_cache():
        use_connection(sandbox)
        serialized = in_processes(defer_once, ["1"])[0]  # the worker's deferral fetches the token
        for size in SIZES:
            rows.append((size, in_processes(triggerer, [(size, serialized, str(sandbox.dir))])[0]))
    print(
        "| triggers | loop lag p50 ms | p99 ms | max ms | requests per interval (median) | of N | "
        "RSS MiB at start / end / peak | MiB per trigger | CPU triggerer / sandbox | tokens issued | "
        "TLS connections | "
        "triggers that ended early |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---|")
    for size, r in rows:
        print(
            f"| {size:,} | {r['lag_p50'] * 1000:.0f} | {r['lag_p99'] * 1000:.0f} | "
            f"{r['lag_max'] * 1000:.0f} | {r['requests']:.0f} | {r['requests'] / size:.0%} | "
            f"{r['rss_before']:.0f} / {r['rss_end']:.0f} / "
            f"{r['rss_peak']:.0f} | {(r['rss_end'] - r['rss_before']) / size:.2f} | "
            f"{r['cpu']:.0%} / {r['server_cpu']:.0%} | "
            f"{r['tokens']} | {r['tls_connections']} | "
            f"{r['ended']} |",
            flush=True,
        )
    knee = next((size for size, r in rows if r["lag_p99"] > 1.0), None)
    where = f"{knee:,} triggers" if knee else f"not reached up to {max(SIZES):,} triggers"
    print(f"\nKnee (p99 lag above 1 s): {where}.")

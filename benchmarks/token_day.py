"""The token endpoint over a day: tokens a deployment asks for in 24 hourly runs of 500 accounts, on two
worker hosts, against the limit of 24 hours / token lifetime. Time is scaled: an hour lasts
``TOKEN_DAY_HOUR`` seconds and so does a token.

Run: ``python -m benchmarks token_day`` (``TOKEN_DAY_HOUR``, default 3 s; ``TOKEN_DAY_SCOPES``, default
host).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks._measure import hourly, in_processes, machine
from benchmarks._sandbox import serving, use_connection

TITLE = "The token endpoint over a day"
ABOUT = """
How many tokens a deployment asks the bank for in a day of hourly runs, against the least it could:
24 hours / token lifetime (24 with the bank's one-hour tokens). Each run fetches 500 balances as 4
mapped task instances of 125 accounts (`hook.get_balances`, 8 workers each), 2 on each of two worker
hosts (each host its own host token store), the 4 in processes of their own, at once.

Command: `.venv/bin/python -m benchmarks token_day` (`TOKEN_DAY_HOUR`, `TOKEN_DAY_SCOPES`)

Time is scaled so the day takes minutes: an hour lasts 3 s and the sandbox issues tokens for 3 s
(`expires_in`), the refresh margin is a third of it (the bank's 5 minutes would be 0.25 s, shorter than
a task process's start, and would let a token fetched late in one run serve the next). Tokens are the
sandbox's counter. `cluster` is not measured here: its Airflow Variable is only reachable from a running
task, which needs Airflow's API server and executor; "Cluster scope over a day: two worker hosts"
(`benchmarks/cluster_day.py`) measures its day on a real Airflow, with the hosts starting one after the
other and at the same instant.

Reading it: with `host` each worker host fetches one token per hour and shares it among its task
processes, so a day costs hosts x 24 (2.00x the limit with two hosts); a token per task, as the http
provider's users do, costs tasks x 24. What closes the gap to the limit is `cluster` (one host's token
reaches the others through the Variable, and a renewal claim makes hosts that renew at the same instant
wait for one host's token): down to the limit whether or not the hosts' tasks start together.
"""

HOUR = float(os.environ.get("TOKEN_DAY_HOUR", "3"))
SCOPES = tuple(os.environ.get("TOKEN_DAY_SCOPES", "host").split(","))
RUNS_PER_DAY = int(os.environ.get("TOKEN_DAY_RUNS", "24"))
ACCOUNTS = 500
HOSTS = 2
TASKS = 4
WORKERS = 8


def mapped_task(arguments: tuple[str, list[str]]) -> int:
    """One mapped task instance on one host: its accounts' balances; how many it got."""
    from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

    host_cache, accounts = arguments
    os.environ["XDG_CACHE_HOME"] = host_cache
    hook = BankingApiHook()
    batch = hook.get_balances(accounts, max_workers=WORKERS)
    hook.client.close()
    return len(batch.succeeded)


def _day(scope: str) -> tuple[list[int], int, float]:
    """Tokens issued in each run, runs that overran their hour, seconds the day took."""
    lifetime = max(1, round(HOUR))
    chunk = ACCOUNTS // TASKS
    with (
        serving(expires_in=lifetime) as sandbox,
        tempfile.TemporaryDirectory(prefix="bankapi-bench-") as hosts,
    ):
        use_connection(sandbox, cache_scope=scope, refresh_margin=lifetime / 3)
        caches = [str(Path(hosts, f"host{n}")) for n in range(HOSTS)]
        accounts = [[str(a) for a in range(n * chunk, (n + 1) * chunk)] for n in range(TASKS)]
        tasks = [(caches[n % HOSTS], accounts[n]) for n in range(TASKS)]
        tokens: list[int] = []
        late = 0
        start = time.monotonic()
        for run, started_late in hourly(RUNS_PER_DAY, HOUR):
            late += started_late
            sandbox.reset_counters()
            fetched = in_processes(mapped_task, tasks, parallel=TASKS)
            if sum(fetched) != chunk * TASKS:
                raise RuntimeError(f"run {run}: {sum(fetched)} balances of {chunk * TASKS}")
            tokens.append(sandbox.counters()["tokens_issued"])
        return tokens, late, time.monotonic() - start


def main() -> None:
    import airflow_provider_bankapi.client.api  # noqa: F401 - what a worker has imported before it forks
    import airflow_provider_bankapi.hooks.bankapi  # noqa: F401

    lifetime = max(1, round(HOUR))
    limit = RUNS_PER_DAY * HOUR / lifetime
    print(f"{machine()}; an hour lasts {HOUR:g} s, a token {lifetime} s.\n")
    print(
        f"| cache_scope | tokens in {RUNS_PER_DAY} runs | per run (min-max) | limit (runs x hour / lifetime) "
        "| vs limit | "
        "a token per task (tasks x runs) | runs that started late |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for scope in SCOPES:
        tokens, late, _ = _day(scope)
        print(
            f"| {scope} | **{sum(tokens)}** | {min(tokens)}-{max(tokens)} | {limit:.0f} | "
            f"{sum(tokens) / limit:.2f}x | {RUNS_PER_DAY * TASKS} | {late} |",
            flush=True,
        )

"""Against the http provider, in the same run: tokens per 100 task runs, 500 balance calls in one task,
and the pitfalls its users meet, shown as what happens.

Each "task run" is a process of its own forked from this one (as Airflow 3 forks task processes),
four at a time; ours builds two ``BankingApiHook``s (an operator and a sensor of the task) and reads a
balance with each, under each ``cache_scope``; the http provider's task fetches one token with
``HttpHook`` and reads two balances with it. Tokens and TLS connections are the sandbox's counters.

Run: ``python -m benchmarks versus_http`` (``VERSUS_BENCH_TASKS``, default 100; ``VERSUS_BENCH_CALLS``,
default 500).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import certifi

from benchmarks._measure import RUNS, fresh_host_cache, in_processes, machine, median, ratio
from benchmarks._peer import balance_hook, fetch_token, get_balance, use_http_connection
from benchmarks._sandbox import serving, use_connection

if TYPE_CHECKING:
    from collections.abc import Callable

    from bankapi_sandbox import Sandbox

TITLE = "Against the http provider"
ABOUT = """
What a user choosing between this provider and `apache-airflow-providers-http` (6.3, the `bench`
extra) would otherwise run, measured in the same run against the same sandbox. The http provider is
used as its users use it with this bank: an `http` connection with the certificate and key in one
file named by its `cert` extra and the bank's CA in `verify`; each task fetches a token with a JSON
POST through `HttpHook.run`, then calls `HttpHook.run` with a Bearer header.

Command: `.venv/bin/python -m benchmarks versus_http`

- **Tokens per task runs**: every task run is a process of its own, forked from a parent that has
  imported Airflow (as Airflow 3 forks its task processes), 4 at a time. Ours: two `BankingApiHook`s
  per task (an operator and a sensor), one balance each, under each `cache_scope`, from an empty host
  cache. `cluster` needs a running task's API server (it falls back to `host` elsewhere): its figures
  come from `tests/hooks/test_token_sharing_dags.py` (see "Token sharing").
- **Balance calls in one task**: a fresh process per run; ours `hook.get_balance` in a loop (default
  scope, so runs after the first find the host's token), theirs `HttpHook.run` in a loop after its
  token POST.
- **Pitfalls**: what each does, run for real (with `REQUESTS_CA_BUNDLE` set to certifi's bundle, as
  many base images set it; this machine sets it too).

Reading it: with `host` (the default) a machine's task runs share one token where the http provider's
users fetch one per task; `process` matches them (a token per task process) and `off` costs a token
per hook. In one task both keep their connections alive, but the http provider opens one per
`HttpHook` (the token hook and the GET hook) and rebuilds a Session and merges the environment's
settings on every `run()`; ours reuses one Session per thread. A `get_conn()` Session of the http
provider sends requests' environment bundle instead of its `verify` CA (requests lets
`REQUESTS_CA_BUNDLE` override a Session's own `verify`), so it fails against a private CA; ours owns
TLS in its adapter. The wall time of the task runs is mostly forking, Airflow's connection lookup and
two TLS handshakes per task on both sides (ours also loads and checks the client identity once per
hook: two hooks, two loads): compare it within a run only.
"""

TASKS = int(os.environ.get("VERSUS_BENCH_TASKS", "100"))
CALLS = int(os.environ.get("VERSUS_BENCH_CALLS", "500"))
PARALLEL = 4
SCOPES = ("off", "process", "host")


# -- task runs (module level: they run in forked processes) ------------------------------------------


def ours_task(accounts: list[str]) -> int:
    from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

    for account in accounts:  # one hook per operator/sensor of the task, one balance each
        hook = BankingApiHook()
        hook.get_balance(account)
        hook.client.close()
    return os.getpid()


def http_task(accounts: list[str]) -> int:
    hook = balance_hook(fetch_token())
    for account in accounts:
        get_balance(hook, account)
    return os.getpid()


def ours_calls(count: int) -> float:
    from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

    started = time.perf_counter()
    with BankingApiHook().client as client:
        for number in range(count):
            client.get_balance(str(number % 97))
    return time.perf_counter() - started


def http_calls(count: int) -> float:
    started = time.perf_counter()
    hook = balance_hook(fetch_token())
    for number in range(count):
        get_balance(hook, str(number % 97))
    return time.perf_counter() - started


# -- measurements ---------------------------------------------------------------------------------


def _task_runs(sandbox: Sandbox, task: Callable[[list[str]], int]) -> dict[str, Any]:
    sandbox.reset_counters()
    started = time.perf_counter()
    pids = in_processes(task, [[str(n), str(n + 1)] for n in range(TASKS)], parallel=PARALLEL)
    wall = time.perf_counter() - started
    counters = sandbox.counters()
    return {"pids": len(set(pids)), "wall": wall, **counters}


def _tokens_table(sandbox: Sandbox) -> None:
    rows: list[tuple[str, dict[str, Any]]] = []
    for scope in SCOPES:
        use_connection(sandbox, cache_scope=scope)
        with fresh_host_cache():
            rows.append((f"ours, `cache_scope={scope}`", _task_runs(sandbox, ours_task)))
    use_http_connection(sandbox)
    peer = _task_runs(sandbox, http_task)
    rows.append(("http provider, a token per task", peer))
    print(f"{TASKS} task runs, each a process of its own, {PARALLEL} at a time; 2 balance calls per task.\n")
    print(
        "| task runs of | distinct processes | tokens issued | tokens vs http provider | TLS connections "
        "| wall s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, row in rows:
        print(
            f"| {label} | {row['pids']} | {row['tokens_issued']} | "
            f"{ratio(row['tokens_issued'], peer['tokens_issued'])} | {row['tls_connections']} | "
            f"{row['wall']:.1f} |",
            flush=True,
        )


def _calls_table(sandbox: Sandbox) -> None:
    use_connection(sandbox)  # the default scope, host
    use_http_connection(sandbox)
    results: dict[str, list[float]] = {"ours": [], "http": []}
    counters: dict[str, dict[str, int]] = {}
    with fresh_host_cache():
        for _ in range(RUNS):  # interleaved, so that a burst of other work hits both alike
            for name, calls in (("ours", ours_calls), ("http", http_calls)):
                sandbox.reset_counters()
                results[name].extend(in_processes(calls, [CALLS]))
                counters[name] = sandbox.counters()
    ours, peer = median(results["ours"]), median(results["http"])
    print(f"\n{CALLS} balance calls in one task (a fresh process per run, token included), {RUNS} runs.\n")
    print(
        "| task | median wall s | calls/s | TLS connections per run | tokens in the last run "
        "| wall vs http provider |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, name, wall in (
        ("ours, `hook.get_balance`", "ours", ours),
        ("http provider, `HttpHook.run`", "http", peer),
    ):
        c = counters[name]
        print(
            f"| {label} | {wall:.2f} | {CALLS / wall:,.0f} | {c['tls_connections']} | {c['tokens_issued']} | "
            f"{ratio(wall, peer)} |",
            flush=True,
        )


def _outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except Exception as exc:  # the point is to show what a user sees
        text = str(exc).replace("|", "/").replace("\n", " ")
        reason = text[text.index("[SSL:") :] if "[SSL:" in text else text  # the ssl module's own words
        return f"fails: `{type(exc).__name__}: {reason[:90]}`"
    return "works"


def _pitfalls(sandbox: Sandbox) -> None:
    from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

    use_connection(sandbox)
    use_connection(sandbox, "bankapi_pem_text", client_cert=sandbox.client_cert.read_text())
    use_http_connection(sandbox)
    use_http_connection(sandbox, "bank_http_list", cert=[str(sandbox.client_cert), str(sandbox.client_key)])
    os.environ["REQUESTS_CA_BUNDLE"] = certifi.where()
    token = fetch_token()
    url = BankingApiHook().client.settings.url("/accounts/1/balance")
    print("\nPitfalls, run for real (`REQUESTS_CA_BUNDLE` set to certifi's bundle):\n")
    print("| what the user does | http provider | ours |")
    print("|---|---|---|")
    rows = (
        (
            "the hook's own call",
            lambda: get_balance(balance_hook(token), "1"),
            lambda: BankingApiHook().get_balance("1"),
        ),
        (
            "a Session from `get_conn()`, then `session.get(url)`",
            lambda: balance_hook(token).get_conn().get(url, timeout=10).raise_for_status(),
            lambda: BankingApiHook().get_conn().get(url, timeout=10).raise_for_status(),
        ),
        (
            "certificate and key as two values (`cert` as a JSON list; ours: two fields, here PEM text)",
            lambda: get_balance(balance_hook(token, "bank_http_list"), "1"),
            lambda: BankingApiHook("bankapi_pem_text").get_balance("1"),
        ),
    )
    for label, theirs, ours in rows:
        print(f"| {label} | {_outcome(theirs)} | {_outcome(ours)} |", flush=True)


def main() -> None:
    # Imported before any fork, as an Airflow worker has imported Airflow before it forks a task.
    import airflow.providers.http.hooks.http  # noqa: F401

    import airflow_provider_bankapi.client.api  # noqa: F401
    import airflow_provider_bankapi.hooks.bankapi  # noqa: F401

    print(f"{machine()}.\n")
    saved = os.environ.get("REQUESTS_CA_BUNDLE")
    try:
        with serving() as sandbox:
            _tokens_table(sandbox)
            _calls_table(sandbox)
            with fresh_host_cache():
                _pitfalls(sandbox)
    finally:
        if saved is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = saved

"""Token sharing: token endpoint calls for N task-like processes under each cache_scope, and what
keep-alive saves on sequential calls.

Part 1 starts N plain Python processes (default 20, ``TOKEN_BENCH_PROCESSES``), each standing for one
task run: it builds two clients (as a task with two hooks would: an operator and a sensor) with
``stores_for(scope)`` and makes two balance calls with each. The processes run one after another
(task runs spread over time) and all at once behind a barrier (a cold start: a mapped task's instances
starting together). Each scope gets a fresh ``XDG_CACHE_HOME``, so every measurement starts cold. The
bank's ``tokens_issued`` counter is the figure. ``cluster`` needs an Airflow API server and is measured by
tests/hooks/test_token_sharing_dags.py instead.

Part 2 times sequential balance calls with one token: one client (one keep-alive TLS connection),
the same client with ``Connection: close`` (a TLS handshake per call, one SSLContext), and a new client
per call (what building a hook per call costs: identity loaded, SSLContext and Session built, handshake).

Run: ``python -m benchmarks token_sharing``. The sandbox runs in its own process, as in sandbox_capacity.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import requests

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.settings import ClientSettings
from airflow_provider_bankapi.client.tokens.cache import MemoryTokenStore
from bankapi_sandbox import Sandbox
from benchmarks._measure import machine
from benchmarks._sandbox import serving

TITLE = "Token sharing"
ABOUT = """
How many times the bank's token endpoint is called when many task processes use one connection,
under each `cache_scope`, and what keep-alive saves on sequential calls.

### Without Airflow: N plain processes per scope

Command: `.venv/bin/python -m benchmarks token_sharing`

Setup: a sandbox `serve`d in its own process; 20 Python processes per pattern
(`TOKEN_BENCH_PROCESSES`), each standing for one task run: two `BankingApiClient`s (a task with two
hooks) built with `stores_for(scope)`, two balance calls each. "One after another" runs the
processes in turn (task runs spread over time); "all at once" releases them together once every
interpreter has imported the client (a cold start of mapped tasks). Every pattern starts from an
empty `XDG_CACHE_HOME`. Tokens are the sandbox's `tokens_issued` counter. `off` costs a token per
client, `process` a token per process, `host` one token for the whole machine in both patterns: the
host store's per-key file lock makes the simultaneous processes wait for the first one's token instead
of asking the bank. "median ms in a process" is the calls alone (imports excluded); the all-at-once
rows are 20 processes sharing 2 CPUs, so they measure contention more than the bank.

The second table times sequential calls with one token (300 per phase, `TOKEN_BENCH_CALLS`): one
client (one keep-alive TLS connection; it shows 0 new TLS connections because the warm-up call opened
it before the counters were reset), the same client with `Connection: close` (a handshake per call),
and a new client per call (identity loaded, SSLContext and Session built, handshake).

### With Airflow: task processes of the LocalExecutor (default `host` and `cluster`)

Not part of `make bench` (it needs an Airflow API server, ~12 s to start); its counts come from
`.venv/bin/pytest -s tests/hooks/test_token_sharing_dags.py`. Each task instance runs
`BankingApiHook().get_balance(...)` in a process of its own (`dag.test(use_executor=True)`,
LocalExecutor, parallelism 4). For `cluster`, a task plays one worker machine by setting its own
`XDG_CACHE_HOME` (a separate host store), so two directories are two hosts that share only the
Airflow Variable.

| scope | task runs | pattern | tokens issued |
|---|---:|---|---:|
| host (default) | 20 mapped + 5 in a second DAG run, 25 distinct PIDs | parallelism 4 | **1** |
| cluster | 2 hosts, one DAG run each, one after the other | sequential | **1** |
| cluster | 2 hosts x 2 task processes, released by a barrier on a cold cache | simultaneous | **1** |

With `cluster`, the second host finds the token in the `bankapi_token_*` Variable: 1 token. On a
simultaneous cold start each host's file lock lets only one of its processes renew, and of the two hosts
one renews: Variables have no compare-and-set, so each host writes a renewal claim
(`bankapi_renewal_*`), waits for a claim written at the same moment to land and reads it back; the host
whose claim both read fetches, the other waits for its token (before claims: one token per host).

### Without Airflow: the figures of this run
"""

PROCESSES = int(os.environ.get("TOKEN_BENCH_PROCESSES", "20"))
CALLS = int(os.environ.get("TOKEN_BENCH_CALLS", "300"))
SCOPES = ("off", "process", "host")

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from airflow_provider_bankapi.client.api import BankingApiClient
    from airflow_provider_bankapi.client.tokens.cache import stores_for
    from airflow_provider_bankapi.client.settings import ClientSettings
    from airflow_provider_bankapi.client.identity.material import IdentityMaterial

    scope, connection = sys.argv[1], json.loads(sys.argv[2])
    settings = ClientSettings(
        base_url=connection["host"], client_id=connection["login"], client_secret=connection["password"],
        identity=IdentityMaterial.from_extra(connection["extra"]),
    )
    print("ready", flush=True)
    sys.stdin.readline()  # the barrier: start when told
    started = time.perf_counter()
    for hook in range(2):
        with BankingApiClient(settings, token_stores=stores_for(scope)) as client:
            for call in range(2):
                client.get_balance(str(hook * 2 + call))
    print(json.dumps({"pid": os.getpid(), "ms": (time.perf_counter() - started) * 1000}), flush=True)
    """
)


def _start(scope: str, sandbox: Sandbox, cache_home: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, scope, sandbox.connection_json],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": cache_home},
    )


def _ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("a child process failed to start")


def _finish(child: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = child.communicate(timeout=300)
    if child.returncode != 0:
        raise RuntimeError(f"a child process exited {child.returncode}")
    result: dict[str, float] = json.loads(out)
    return result


def _go(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def _processes(sandbox: Sandbox, scope: str, *, together: bool) -> tuple[int, int, float, float]:
    """Tokens issued, distinct pids, seconds from the first go to the last answer, and the median time
    one process spent on its calls (imports excluded), of one pattern from a cold cache.
    """
    sandbox.reset_counters()
    with tempfile.TemporaryDirectory(prefix="bankapi-bench-cache-") as cache_home:
        results = []
        started = time.perf_counter()
        if together:
            children = [_start(scope, sandbox, cache_home) for _ in range(PROCESSES)]
            for child in children:
                _ready(child)  # every interpreter has imported the client: the barrier opens for all
            started = time.perf_counter()
            for child in children:
                _go(child)
            results = [_finish(child) for child in children]
        else:
            for _ in range(PROCESSES):
                child = _start(scope, sandbox, cache_home)
                _ready(child)
                _go(child)
                results.append(_finish(child))
        wall = time.perf_counter() - started
    pids = len({result["pid"] for result in results})
    median_ms = statistics.median(result["ms"] for result in results)
    return sandbox.counters()["tokens_issued"], pids, wall, median_ms


def _settings(sandbox: Sandbox) -> ClientSettings:
    connection = sandbox.connection
    return ClientSettings(
        base_url=connection["host"],
        client_id=connection["login"],
        client_secret=connection["password"],
        identity=IdentityMaterial.from_extra(connection["extra"]),
    )


def _timed(call, count: int) -> list[float]:  # noqa: ANN001 - a benchmark helper
    durations = []
    for number in range(count):
        start = time.perf_counter()
        call(number)
        durations.append(time.perf_counter() - start)
    return durations


def _sequential(sandbox: Sandbox) -> None:
    settings = _settings(sandbox)
    shared = MemoryTokenStore()  # one token for all three phases: only the transport differs
    with BankingApiClient(settings, token_stores=[shared]) as client:
        client.get_token()
        phases = {
            "one client, keep-alive": lambda n: client.get_balance(str(n % 7)),
            "one client, `Connection: close`": lambda n: client.request(
                "GET", f"/accounts/{n % 7}/balance", headers={"Connection": "close"}
            ),
        }

        def new_client(number: int) -> None:
            with BankingApiClient(settings, token_stores=[shared]) as fresh:
                fresh.get_balance(str(number % 7))

        phases["a new client per call"] = new_client
        print("| sequential balance calls | calls/s | p50 ms | p99 ms | calls | TLS connections | tokens |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, call in phases.items():
            call(0)  # warm-up (the keep-alive phase opens its connection here)
            sandbox.reset_counters()
            durations = _timed(call, CALLS)
            counters = sandbox.counters()
            print(
                f"| {label} | {len(durations) / sum(durations):,.0f} | "
                f"{statistics.median(durations) * 1000:.2f} | "
                f"{statistics.quantiles(durations, n=100)[98] * 1000:.2f} | {len(durations)} | "
                f"{counters['tls_connections']} | {counters['tokens_issued']} |",
                flush=True,
            )


def main() -> None:
    print(
        f"{machine()}, requests {requests.__version__}; {PROCESSES} processes per pattern, "
        f"each 2 clients x 2 balance calls; {CALLS} sequential calls per phase.\n"
    )
    with serving() as sandbox:
        print("| cache_scope | processes | pattern | tokens issued | wall s | median ms in a process |")
        print("|---|---:|---|---:|---:|---:|")
        for scope in SCOPES:
            for together in (False, True):
                tokens, pids, wall, median_ms = _processes(sandbox, scope, together=together)
                pattern = "all at once (cold start)" if together else "one after another"
                row = f"| {scope} | {pids} | {pattern} | {tokens} | {wall:.1f} | {median_ms:.0f} |"
                print(row, flush=True)
        print()
        _sequential(sandbox)

"""The cluster day: tokens two worker hosts ask for in 24 hourly runs with ``cache_scope=cluster`` on a real
Airflow, their tasks starting one after the other or at the same instant. Time is scaled: an hour lasts
``CLUSTER_DAY_HOUR`` seconds and so does a token.

Run: ``python -m benchmarks cluster_day`` (``CLUSTER_DAY_HOUR``, default 15 s; ``CLUSTER_DAY_RUNS``,
default 24; ``CLUSTER_DAY_PATTERNS``, default ``staggered,simultaneous``).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._measure import hourly, machine
from benchmarks._sandbox import serving

if TYPE_CHECKING:
    from deployment import Deployment

    from bankapi_sandbox import Sandbox

TITLE = "Cluster scope over a day: two worker hosts"
ABOUT = """
How many tokens two worker hosts sharing one token through an Airflow Variable (`cache_scope="cluster"`)
ask the bank for in a day of hourly runs, against the least they could: 24 hours / token lifetime (24
with the bank's one-hour tokens).

Command: `.venv/bin/python -m benchmarks cluster_day` (`CLUSTER_DAY_HOUR`, `CLUSTER_DAY_RUNS`,
`CLUSTER_DAY_PATTERNS`)

A real Airflow, the one `make e2e` starts (`tests/e2e/deployment.py`): `airflow api-server`, `scheduler`
(LocalExecutor, each task instance in a process of its own), `dag-processor` and `triggerer`, on a SQLite
metadata DB. Each hourly run is a DAG run of `bankapi_cluster_hosts` (`tests/hooks/dags/token_sharing.py`)
triggered through the REST API, with two mapped task instances; each plays one worker host by setting its
own `XDG_CACHE_HOME` (its own host token store), so the two share only the Variable, and calls
`BankingApiHook().get_balance(...)`. Staggered: the second host's task calls the bank once the first one's
has. Simultaneous: both tasks wait at a file barrier and call the bank at the same instant, every hour.
Each pattern starts cold: a new sandbox (a new credential, so a new Variable) and empty host stores.

Time is scaled: an hour lasts 15 s (a run takes ~5 s from its trigger to its end here) and the sandbox
issues tokens for 15 s (`expires_in`), so every run finds the previous run's token expired, as a run an
hour later finds a one-hour token; the refresh margin is a third of the lifetime (see "The token endpoint
over a day"). Tokens are the sandbox's counter. A run that started late (the previous one overran its
hour) shows in the last column.

Reading it: staggered hosts settle on one token per hour because the second finds the first's token in
the Variable. Hosts that renew at the same instant each fetched their own before renewal claims
(Variables have no compare-and-set): 48 tokens in the simultaneous day, 2.00x, measured with this
command on the same machine just before the claims went in. With a claim (`bankapi_renewal_<hash>`), one
host renews while the other waits for its token (a DAG run ~1 s longer: the claim's 0.5 s settle and the
wait), so both patterns stay at one token per run.
"""

HOUR = float(os.environ.get("CLUSTER_DAY_HOUR", "15"))
RUNS_PER_DAY = int(os.environ.get("CLUSTER_DAY_RUNS", "24"))
PATTERNS = tuple(os.environ.get("CLUSTER_DAY_PATTERNS", "staggered,simultaneous").split(","))
HOSTS = 2
TESTS = Path(__file__).resolve().parents[1] / "tests"
DAG_FILE = TESTS / "hooks" / "dags" / "token_sharing.py"
DAG_ID = "bankapi_cluster_hosts"


def _hosts(pattern: str, homes: list[Path], folder: Path) -> list[dict[str, Any]]:
    """The conf of one run: a task per host, started as the pattern says."""
    hosts: list[dict[str, Any]] = [
        {"cache_home": str(home), "account_id": str(index)} for index, home in enumerate(homes)
    ]
    if pattern == "simultaneous":
        for host in hosts:
            host.update(barrier=str(folder), parties=len(hosts))
    elif pattern == "staggered":
        for before, host in zip(hosts, hosts[1:], strict=False):
            before["called"] = host["after"] = str(folder / f"called-{before['account_id']}")
    else:
        raise SystemExit(f"CLUSTER_DAY_PATTERNS: unknown pattern {pattern!r}; use staggered or simultaneous")
    return hosts


def _day(
    deployment: Deployment, sandbox: Sandbox, pattern: str, scratch: Path
) -> tuple[list[int], int, list[float]]:
    """Tokens issued in each run, runs that started late, seconds from each trigger to the run's end."""
    from deployment import form_connection

    lifetime = max(1, round(HOUR))
    connection = form_connection(sandbox, cache_scope="cluster", refresh_margin=lifetime / 3)
    deployment.create_connection("bankapi_default", connection)
    homes = [scratch / pattern / f"host-{index}" for index in range(HOSTS)]
    tokens: list[int] = []
    durations: list[float] = []
    late = 0
    for run, started_late in hourly(RUNS_PER_DAY, HOUR):
        late += started_late
        folder = scratch / pattern / f"run-{run}"
        folder.mkdir(parents=True)
        before = sandbox.counters()["tokens_issued"]
        began = time.monotonic()
        run_id = deployment.trigger(DAG_ID, {"hosts": _hosts(pattern, homes, folder)})
        result = deployment.wait_for_run(DAG_ID, run_id, timeout=300)
        durations.append(time.monotonic() - began)
        if result.state != "success":
            raise RuntimeError(f"{pattern} run {run}: {result.state} {dict(result.task_states)}")
        tokens.append(sandbox.counters()["tokens_issued"] - before)
    return tokens, late, durations


def main() -> None:
    # The suite's real Airflow: a throwaway AIRFLOW_HOME, set before anything imports airflow.
    sys.path[:0] = [str(TESTS), str(TESTS / "e2e")]
    import airflow_harness
    import session_temp
    from deployment import Deployment

    lifetime = max(1, round(HOUR))
    limit = RUNS_PER_DAY * HOUR / lifetime
    try:
        with tempfile.TemporaryDirectory() as scratch:
            dags = Path(scratch, "dags")
            dags.mkdir()
            shutil.copy(DAG_FILE, dags)
            # The benchmarks' runner quiets Airflow for its tables; the harness waits for INFO lines.
            logging = {"AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
            with Deployment("cluster-day", dags, env=logging) as deployment:
                deployment.wait_for_dags([DAG_ID])
                print(
                    f"{machine()}; Airflow ready in {deployment.startup_seconds:.0f} s; an hour lasts "
                    f"{HOUR:g} s, a token {lifetime} s; {HOSTS} worker hosts.\n"
                )
                print(
                    f"| start pattern | tokens in {RUNS_PER_DAY} runs | per run (min-max) "
                    "| limit (runs x hour / lifetime) | vs limit | trigger to end of run, s (median) "
                    "| runs that started late |"
                )
                print("|---|---:|---:|---:|---:|---:|---:|")
                for pattern in PATTERNS:
                    with serving(expires_in=lifetime) as sandbox:
                        tokens, late, durations = _day(deployment, sandbox, pattern, Path(scratch))
                    print(
                        f"| {pattern} | **{sum(tokens)}** | {min(tokens)}-{max(tokens)} | {limit:.0f} | "
                        f"{sum(tokens) / limit:.2f}x | {statistics.median(durations):.1f} | {late} |",
                        flush=True,
                    )
    finally:
        airflow_harness.remove_home()
        session_temp.remove()

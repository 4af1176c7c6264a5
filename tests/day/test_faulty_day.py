"""A whole day at a faulty bank: 24 hourly runs of a balances DAG over 500 accounts, in real task processes.

Time is compressed: the bank's tokens live a minute, so they expire during the day. One balance answer
in a hundred is faulted, drawn from a seeded mix (429 with Retry-After in seconds and as an HTTP date,
502, 503, 504, a dropped connection, an answer that hangs past the read timeout, the token revoked, a
404 balance, a 200 that is not JSON). Mid-day the host token cache is removed and the client
certificate is rotated (the second bound, the first unbound). One run is forced through an Airflow
retry. Afterwards, for every run:

- every account's balance is in the output exactly once (with the bank's figures), or named in the
  failure report of the run's last try with the error and the bank's reason: 0 lost, 0 duplicated;
- no account was asked more often than its bound: per try, ``max_retries + 1`` attempts, twice when a
  401 made the client fetch a new token (counted from the bank's request log);

and for the day: tokens issued <= 1 + day / (token lifetime - refresh margin) + the revocations + the
rotation + the lost cache.

The seed and the figures are printed; ``BANKAPI_DAY_SEED=<seed> make day`` replays a day.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from airflow_harness import run_dag
from bank_day import BankDay
from written import jsonl_records

from bankapi_sandbox import data

pytestmark = [pytest.mark.airflow, pytest.mark.day]

DAG_FILE = Path(__file__).parent / "dags" / "balances_day.py"
HOURS = 24
ACCOUNTS = [f"acct-{number:03d}" for number in range(500)]
FAULT_RATE = 0.01
FAULT_KINDS = ("429", "429-date", "502", "503", "504", "drop", "hang", "revoke", "404", "not-json")
TOKEN_LIFETIME = 60
REFRESH_MARGIN = 5
MAX_RETRIES = 3
READ_TIMEOUT = 2  # what a "hang" costs per attempt
FORCED_RETRY_HOUR, CACHE_LOST_HOUR, ROTATION_HOUR = 3, 8, 12
# One LocalExecutor worker: each run has one task. With several, Airflow 3.3.2's LocalExecutor.end() now
# and then waits for ever on a worker that never got its poison pill (apache/airflow#45329), and the day
# would hang in the harness rather than fail in the provider. Read when Airflow first loads its executor,
# i.e. at the day's first run (`make day` runs the day alone).
ONE_WORKER = {"AIRFLOW__CORE__PARALLELISM": "1"}


def _connection(sandbox, cert: Path, key: Path) -> dict:
    return {
        **sandbox.connection,
        "extra": {
            "client_cert": str(cert),
            "client_private_key": str(key),
            "ca_cert": str(sandbox.ca_cert),
            "timeout": READ_TIMEOUT,
            "max_retries": MAX_RETRIES,
            "refresh_margin": REFRESH_MARGIN,
        },
    }


def _tries(run) -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return int(
            session.scalar(
                select(TaskInstance.try_number).where(
                    TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id
                )
            )
        )


def _rows(output: Path, hour: int) -> list[dict]:
    path = output / f"{hour:02d}.jsonl"
    return jsonl_records(path.read_text()) if path.exists() else []


def _check_run(output: Path, hour: int, run, tries: int, requests: list[dict], seed: int) -> dict[str, dict]:
    """The run's outcome: every account delivered once or named with its reason; returns the named ones."""
    replay = f"hour {hour}, seed {seed}"
    rows = _rows(output, hour)
    delivered = [row["account_id"] for row in rows]
    assert len(delivered) == len(set(delivered)), f"duplicated rows ({replay})"
    for row in rows:
        expected = data.balance(row["account_id"])
        assert row == expected, f"{row['account_id']}: wrong balance {row} ({replay})"
    named: dict[str, dict] = {}
    if run.state != "success":
        report = output / f"{hour:02d}.try{tries}.failures.json"
        named = json.loads(report.read_text())["failed"]
        for account, reason in named.items():
            assert reason["error"], f"{account} named without its error ({replay})"
            assert reason["message"], f"{account} named without the reason ({replay})"
    assert not set(delivered) & set(named), f"delivered and named as failed ({replay})"
    assert sorted([*delivered, *named]) == ACCOUNTS, f"lost rows ({replay})"
    bound = tries * 2 * (MAX_RETRIES + 1)
    asked = _asked(requests)
    over = {account: count for account, count in asked.items() if count > bound}
    assert not over, f"request loops past {bound} requests ({replay}): {over}"
    return named


def _asked(requests) -> Counter[str]:
    """How many times the bank was asked for each account's balance."""
    return Counter(entry["account"] for entry in requests if entry["account"] is not None)


def _rotate(sandbox) -> tuple[Path, Path]:
    """The second certificate bound, the connection switched to it, the first unbound."""
    second = sandbox.issue_client_certificate("client-rotated", bind=True)
    sandbox.core.unbind(sandbox.client_id, sandbox.client_cert)
    return second.certificate, second.private_key


@pytest.mark.timeout(600)  # the day's budget: it takes about 5 minutes on 2 cores
@pytest.mark.bankapi_sandbox(expires_in=TOKEN_LIFETIME)
def test_a_faulty_day_loses_nothing_duplicates_nothing_and_names_every_failure(
    bankapi_sandbox, airflow_api_server, tmp_path, capsys
):
    sandbox = bankapi_sandbox
    seed = int(os.environ.get("BANKAPI_DAY_SEED") or secrets.randbelow(2**31))
    BankDay(sandbox).set_fault_mix(seed=seed, rate=FAULT_RATE, kinds=FAULT_KINDS, paths="/accounts/*/balance")
    output, cache = tmp_path / "output", tmp_path / "cache"
    output.mkdir()
    cert, key = sandbox.client_cert, sandbox.client_key
    figures: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    started = time.monotonic()
    for hour in range(HOURS):
        if hour == FORCED_RETRY_HOUR:
            sandbox.inject_fault(f"/accounts/{ACCOUNTS[7]}/balance", "404")
        if hour == CACHE_LOST_HOUR:
            shutil.rmtree(cache)
        if hour == ROTATION_HOUR:
            cert, key = _rotate(sandbox)
        run = run_dag(
            DAG_FILE,
            connections={"bankapi_default": _connection(sandbox, cert, key)},
            env={"XDG_CACHE_HOME": str(cache), **ONE_WORKER},
            conf={"hour": hour, "accounts": " ".join(ACCOUNTS), "output": str(output)},
            use_executor=True,
        )
        tries = _tries(run)
        requests = BankDay(sandbox).take_requests()
        named = _check_run(output, hour, run, tries, requests, seed)
        if hour == FORCED_RETRY_HOUR:
            assert tries >= 2, f"the forced 404 did not make Airflow retry (seed {seed})"
        faults.update(entry["fault"] for entry in requests if entry["fault"])
        errors.update(f"{reason['error']} {reason['status_code']}" for reason in named.values())
        figures.update(
            runs=1,
            balances=len(ACCOUNTS) - len(named),
            failed=len(named),
            airflow_retries=tries - 1,
            requests=sum(entry["account"] is not None for entry in requests),
            reauth=sum(entry["status"] == 401 for entry in requests),
            repeats=sum(count - 1 for count in _asked(requests).values()),
        )
    day = time.monotonic() - started
    counters = sandbox.counters()
    revocations = faults["revoke"]
    allowed = 1 + int(day // (TOKEN_LIFETIME - REFRESH_MARGIN)) + revocations + 2  # + rotation + lost cache
    with capsys.disabled():
        print(
            f"\nfaulty day: seed {seed}; {figures['runs']} runs x {len(ACCOUNTS)} accounts in {day:.0f} s; "
            f"{figures['balances']} balances delivered, {figures['failed']} named in failure reports "
            f"({dict(errors)}); 0 lost, 0 duplicated\n"
            f"  {figures['requests']} balance requests, faults injected {sum(faults.values())}: "
            f"{dict(sorted(faults.items()))}; {figures['reauth']} answered 401 (re-auth); "
            f"{figures['airflow_retries']} Airflow task retries; {figures['repeats']} requests beyond the "
            f"first per account and run (retries within calls, re-auths, Airflow retries' new asks)\n"
            f"  tokens issued {counters['tokens_issued']} (bound {allowed}: day {day:.0f} s / "
            f"({TOKEN_LIFETIME} - {REFRESH_MARGIN}) s + 1 + {revocations} revocations + rotation "
            "+ lost cache)"
        )
    assert figures["runs"] == HOURS
    assert sum(faults.values()) > 0, f"no fault was injected (seed {seed})"
    assert counters["tokens_issued"] <= allowed, f"too many tokens (seed {seed})"

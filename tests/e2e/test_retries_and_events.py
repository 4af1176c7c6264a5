"""Airflow's own machinery around the provider, in a real deployment (LocalExecutor, a real triggerer):
the retry policy deciding what a failure does to a task's retries, and an AssetWatcher on the event
trigger starting a DAG when a balance crosses a threshold.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from bank_day import BankDay
from deployment import Deployment, form_connection, report, report_deployment, run_path

from bankapi_sandbox import running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "dags_examples"
PAYOUT_ACCOUNT = "7777"
RATE_LIMITED_ACCOUNT = "4242"
DAG_IDS = ["bankapi_e2e_refused", "bankapi_e2e_rate_limited", "bankapi_payout_on_funds"]


@pytest.fixture(scope="module")
def bank():
    with running() as sandbox:
        sandbox.set_available_balance(PAYOUT_ACCOUNT, "100.00")
        yield sandbox


@pytest.fixture(scope="module")
def dags_folder():
    folder = Path(tempfile.mkdtemp(prefix="bankapi-e2e-machinery-"))
    shutil.copy(HERE / "machinery_dags" / "bankapi_e2e_retries.py", folder)
    shutil.copy(EXAMPLES / "bankapi_payout_on_funds.py", folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def deployment(bank, dags_folder, request):
    started = time.monotonic()
    env = {
        # From the start, in every component: the payout DAG's watcher trigger may start in the triggerer
        # before a connection made through the API would exist, and would then fail until its shared client
        # reads the connection again.
        "AIRFLOW_CONN_BANKAPI_DEFAULT": json.dumps(form_connection(bank)),
        "BANKAPI_PAYOUT_ACCOUNT": PAYOUT_ACCOUNT,
        "BANKAPI_PAYOUT_POKE_INTERVAL": "0.5",
        # Asset-triggered runs are made by the scheduler's job schedule; the DAGs here have no other.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
    }
    with Deployment("machinery", dags_folder, env=env) as airflow:
        wrong = form_connection(bank)
        wrong["password"] = "not-the-secret-0123456789"
        airflow.create_connection("bankapi_wrong_secret", wrong)
        airflow.create_connection("bankapi_no_retries", form_connection(bank, max_retries=0))
        airflow.wait_for_dags(DAG_IDS)
        yield airflow
    report_deployment(request, airflow, started)


def task_instances(deployment, dag_id, run_id):
    path = f"{run_path(dag_id, run_id)}/taskInstances"
    return deployment.call("GET", path, params={"limit": 1000})["task_instances"]


def test_a_wrong_secret_fails_24_mapped_tasks_on_their_first_try_with_one_token_request_each(
    deployment, bank, request
):
    BankDay(bank).take_requests()
    run_id = deployment.trigger("bankapi_e2e_refused")
    result = deployment.wait_for_run("bankapi_e2e_refused", run_id)

    # The refused ones: a watcher of another module's DAG may fetch a good token meanwhile, on its own.
    requests = BankDay(bank).take_requests()
    token_requests = [r for r in requests if r["path"].endswith("/auth/token-v2") and r["status"] != 200]
    instances = task_instances(deployment, "bankapi_e2e_refused", run_id)
    assert result.state == "failed"
    assert len(instances) == 24
    assert {(ti["state"], ti["try_number"]) for ti in instances} == {("failed", 1)}
    report(request, f"wrong secret, 24 mapped tasks, retries=3: {len(token_requests)} token requests")
    assert len(token_requests) <= 24, f"{len(token_requests)} token requests (96 without the policy)"
    assert {r["status"] for r in token_requests} == {401}
    logs = [
        path.read_text()
        for path in (deployment.scheduler_host.log_dir / "dag_id=bankapi_e2e_refused").rglob("attempt=*.log")
    ]
    assert len(logs) == 24  # one attempt per task: no attempt=2
    assert all("Invalid Credentials" in log and "Retry policy decision" in log for log in logs)


def test_a_429_with_retry_after_120_holds_the_retry_back_120_seconds(deployment, bank, request):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bank.inject_fault(f"/accounts/{RATE_LIMITED_ACCOUNT}/balance", "429", count=1, retry_after=120)
    run_id = deployment.trigger("bankapi_e2e_rate_limited")
    deadline = time.monotonic() + 300
    state = None
    while time.monotonic() < deadline:
        (ti,) = task_instances(deployment, "bankapi_e2e_rate_limited", run_id)
        state = ti["state"]
        if state in ("up_for_retry", "failed", "success"):
            break
        time.sleep(1)
    assert state == "up_for_retry", deployment.where_logs_are()

    from airflow import settings

    settings.engine.dispose()  # this process's pooled SQLite connections: read the DB as it is now
    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == "bankapi_e2e_rate_limited", TaskInstance.run_id == run_id
            )
        ).one()
        wait = ti.next_retry_datetime() - ti.end_date
        report(request, f"429 with Retry-After 120: the next try {wait} after the failure")
        assert ti.retry_delay_override == 120  # the task's own retry_delay is 1 s
        assert "RateLimitedError" in ti.retry_reason
        assert ti.next_retry_datetime() - ti.end_date >= timedelta(seconds=120)


def test_an_asset_watcher_starts_the_payout_when_the_balance_crosses_the_threshold(deployment, bank):
    dag_id = "bankapi_payout_on_funds"
    balance = f"/accounts/{PAYOUT_ACCOUNT}/balance"
    BankDay(bank).take_requests()
    deployment.call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})  # its watcher starts
    deadline = time.monotonic() + 180
    polls = 0
    while time.monotonic() < deadline and polls < 5:
        polls += sum(1 for r in BankDay(bank).take_requests() if r["path"].endswith(balance))
        time.sleep(0.5)
    assert polls >= 5, f"the triggerer never polled the balance; {deployment.where_logs_are()}"
    assert not asset_triggered(deployment, dag_id)  # still below

    bank.set_available_balance(PAYOUT_ACCOUNT, "2000.00")
    deadline = time.monotonic() + 300
    runs: list[dict] = []
    while time.monotonic() < deadline and not runs:
        runs = asset_triggered(deployment, dag_id)
        time.sleep(1)
    assert runs, f"no run of {dag_id} after the balance crossed the threshold; {deployment.where_logs_are()}"
    result = deployment.wait_for_run(dag_id, runs[0]["dag_run_id"])

    assert result.state == "success", deployment.explain([result])
    assert runs[0]["run_type"] == "asset_triggered"
    order = deployment.xcom(result, "payout")
    assert order["available_when_seen"] == "2000.00"
    time.sleep(5)  # the balance stays above: still one run
    assert len(asset_triggered(deployment, dag_id)) == 1


def asset_triggered(deployment, dag_id: str) -> list[dict]:
    """The DAG's runs started by an asset event (earlier modules' runs are gone: see ``deployment.py``)."""
    runs = deployment.call("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]
    return [run for run in runs if run["run_type"] == "asset_triggered"]

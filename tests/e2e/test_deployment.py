"""Every example DAG in a real deployment: api-server, scheduler, dag-processor and triggerer as separate
processes (LocalExecutor), the DAGs folder at ``dags_examples/``, the connection saved through the REST
API as the UI form saves it, each DAG triggered through the REST API; then the CLI a user reaches for.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from deployment import Deployment, form_connection, report_deployment, secrets_of
from written import jsonl_records

from bankapi_sandbox import data, running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"
EXAMPLE_DAGS = sorted(path.stem for path in EXAMPLES.glob("bankapi_*.py"))
FUNDS_ACCOUNT = "3003"  # read by no other example, so that its injected faults hit only the sensor


@pytest.fixture(scope="module")
def bank():
    with running() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def output():
    base = Path(tempfile.mkdtemp(prefix="bankapi-e2e-output-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def deployment(bank, output, request):
    started = time.monotonic()
    # The sensor's poll interval is read when the DAG file is parsed (dag-processor) and run (workers). Not
    # shorter than the README advises: Airflow 3.3.2's scheduler fails a deferred task whose trigger fires
    # before it has handled the worker's exit from the deferral, and a busy scheduler here took 6 s.
    # The client certificate, key and CA as files that only the worker machine has (the API server's
    # file system does not), for the connection test on the workers.
    on_workers = {path.name: path.read_bytes() for path in (bank.client_cert, bank.client_key, bank.ca_cert)}
    env = {"BANKAPI_FUNDS_POKE_INTERVAL": "30"}
    with Deployment("local", EXAMPLES, env=env, worker_files=on_workers) as airflow:
        airflow.create_connection("bankapi_default", form_connection(bank))
        airflow.set_variable("bankapi_output_base", f"file://{output}")
        airflow.wait_for_dags(EXAMPLE_DAGS)
        yield airflow
    report_deployment(request, airflow, started)


def rows(url: str) -> list[dict]:
    assert url.startswith("file:///"), url
    return jsonl_records(Path(url.removeprefix("file://")).read_text())


def trigger_log(deployment, result) -> Path:
    folder = deployment.scheduler_host.log_dir / f"dag_id={result.dag_id}" / f"run_id={result.run_id}"
    (path,) = folder.glob("task_id=wait_for_funds/attempt=1.log.trigger.*.log")
    return path


def test_every_example_dag_succeeds_with_one_token(deployment, bank, output):
    # The sensor's first look, from its worker, gets 503s past the client's 3 retries: "not yet", so it
    # defers, and the triggerer's first poll sees the funds.
    bank.inject_fault(f"/accounts/{FUNDS_ACCOUNT}/balance", "503", count=4, retry_after=0)
    confs = {"bankapi_wait_for_funds": {"account_id": FUNDS_ACCOUNT}}
    # A daily window reads the business date before the run's logical date: by hand, as in the trigger form.
    logical_dates = {"bankapi_transactions_daily": "2026-12-05T03:00:00+00:00"}
    run_ids = {
        dag_id: deployment.trigger(dag_id, confs.get(dag_id), logical_date=logical_dates.get(dag_id))
        for dag_id in EXAMPLE_DAGS
    }
    results = {dag_id: deployment.wait_for_run(dag_id, run_id) for dag_id, run_id in run_ids.items()}

    states = {dag_id: result.state for dag_id, result in results.items()}
    assert states == dict.fromkeys(EXAMPLE_DAGS, "success"), deployment.explain(results.values())

    xcom = deployment.xcom
    hourly = xcom(results["bankapi_hourly_balances"], "fetch_balances")
    assert rows(hourly["path"]) == [data.balance(account) for account in ("123", "456", "789")]

    mapped = results["bankapi_balances_mapped"]
    for index, account in enumerate(("123", "456", "789", "1001")):
        assert rows(xcom(mapped, "fetch_balance", map_index=index)["path"]) == [data.balance(account)]
    assert xcom(mapped, "summary")["balances"] == 4

    exported = xcom(results["bankapi_transactions_paginated"], "export_transactions")
    total = data.transaction_count("123")
    assert [row["transactionId"] for row in rows(exported["path"])] == [f"123-{i:05d}" for i in range(total)]

    assert xcom(results["bankapi_certificate_check"], "check_client_certificate")["status"] == "ok"

    daily = xcom(results["bankapi_transactions_daily"], "export_transactions")
    assert daily["path"].endswith("/transactions-daily/123/2026-12-04.jsonl")  # the São Paulo business date
    assert daily["records"] == len(rows(daily["path"])) > 0

    funds = results["bankapi_wait_for_funds"]
    assert xcom(funds, "payout")["available_when_checked"] == data.balance(FUNDS_ACCOUNT)["available"]
    # It deferred, and its trigger ran in the triggerer: the trigger's own log, named after the
    # triggerer's job, and the task resumed with what the trigger saw.
    log = trigger_log(deployment, funds)
    assert f"Poll 1 of /accounts/{FUNDS_ACCOUNT}/balance: available >= 1500.00 holds." in log.read_text()
    job_id = int(re.search(r"\.trigger\.(\d+)\.log$", log.name).group(1))
    assert job_id in deployment.job_ids("TriggererJob")
    assert "condition met after 1 polls in the triggerer" in funds.task_log("wait_for_funds")

    counters = bank.counters()
    assert counters["faults_served"] == {"503": 4}
    # Eleven task processes and the triggerer's poll, one token: the host store of the scheduler's machine.
    assert counters["tokens_issued"] == 1

    leaks = deployment.files_holding(secrets_of(bank, deployment.hosts))
    assert not leaks, f"secrets in files under AIRFLOW_HOME: {leaks}"


def test_cli_connections_test_with_the_saved_connection(deployment, bank):
    good = deployment.airflow("connections", "test", "bankapi_default")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Connection success!" in good.stdout

    wrong_secret = "wrong-client-secret-e2e-0123456789"
    deployment.create_connection("bankapi_wrong_secret", {**form_connection(bank), "password": wrong_secret})
    bad = deployment.airflow("connections", "test", "bankapi_wrong_secret")
    assert bad.returncode == 1
    assert "Connection failed!" in bad.stdout
    assert "Invalid Credentials" in bad.stdout  # the bank's reason...
    assert "Client ID (login) and Client secret (password)" in bad.stdout  # ...and its checklist
    assert wrong_secret not in bad.stdout + bad.stderr


def worker_file_connection(bank, deployment, **changes) -> dict:
    """The sandbox's connection with its material as paths that exist on the worker machine only."""
    folder = deployment.worker_files
    extra = {
        "client_cert": str(folder / bank.client_cert.name),
        "client_private_key": str(folder / bank.client_key.name),
        "ca_cert": str(folder / bank.ca_cert.name),
    }
    return {**form_connection(bank), "extra": json.dumps(extra), **changes}


def test_the_connection_test_runs_on_the_workers_where_the_files_are(deployment, bank):
    fields = worker_file_connection(bank, deployment)
    assert not any(deployment.worker_files.iterdir())  # this machine (and the API server's) has none of them

    # The Test button runs on the API server, whose file system lacks the worker's files: it names the
    # field and the path it could not find there.
    body = {"connection_id": "bankapi_files", **fields}
    button = deployment.call("POST", "/api/v2/connections/test", json=body)
    assert button["status"] is False
    assert "client_cert names the file" in button["message"]
    assert "does not exist on this machine" in button["message"]

    # The same connection tested on a worker, dispatched by the scheduler to its executor.
    bank.reset_counters()
    on_worker = deployment.test_on_worker("bankapi_files", fields)
    assert on_worker["state"] == "success", on_worker
    assert "the bank issued a token" in on_worker["result_message"]
    assert bank.counters()["tokens_issued"] == 1

    wrong_secret = "wrong-client-secret-on-the-worker-0123"
    refused = deployment.test_on_worker("bankapi_files", {**fields, "password": wrong_secret})
    assert refused["state"] == "failed", refused
    assert "Invalid Credentials" in refused["result_message"]  # the bank's reason...
    assert "Client ID (login) and Client secret (password)" in refused["result_message"]  # ...its checklist
    assert wrong_secret not in json.dumps(refused)


def test_cli_lists_no_import_error_for_the_examples(deployment):
    result = deployment.airflow("dags", "list-import-errors", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert last_line_json(result.stdout) == []
    listed = deployment.airflow("dags", "list", "--output", "json")
    assert set(EXAMPLE_DAGS) <= {dag["dag_id"] for dag in last_line_json(listed.stdout)}


def last_line_json(stdout: str):
    # The CLI prints Airflow's own warnings (e.g. "Could not import graphviz") before its JSON.
    return json.loads(stdout.strip().splitlines()[-1])

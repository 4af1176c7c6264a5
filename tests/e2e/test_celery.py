"""Two Celery workers (two "hosts": a token cache and a log folder each) share the bank's tokens.

CeleryExecutor with a Redis broker, the api-server, scheduler, dag-processor and triggerer as separate
processes. A DAG of 24 mapped balance tasks runs on cold caches: with ``cache_scope=cluster`` the
workers fetch at most one token each and leave one in the Airflow Variable, which workers on new
machines then use without fetching; with ``host`` each worker fetches its own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from deployment import Deployment, form_connection, report, report_deployment, secrets_of

from airflow_provider_bankapi.hooks.variable_store import CLAIM_PREFIX, VARIABLE_PREFIX
from bankapi_sandbox import data, running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

DAGS = Path(__file__).parent / "dags"
DAG_ID = "bankapi_e2e_balances_celery"
ACCOUNTS = [str(5000 + index) for index in range(24)]  # as in the DAG


@pytest.fixture(scope="module")
def bank():
    with running() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def celery(request):
    started = time.monotonic()
    with Deployment("celery", DAGS, celery_workers=2, concurrency=2) as airflow:
        airflow.wait_for_dags([DAG_ID])
        yield airflow
    report_deployment(request, airflow, started)


def variables(celery, prefix: str = VARIABLE_PREFIX) -> list[dict]:
    """The deployment's Variables whose name starts with ``prefix`` (the tokens' by default)."""
    listed = celery.call("GET", "/api/v2/variables", params={"limit": 100})["variables"]
    return [variable for variable in listed if variable["key"].startswith(prefix)]


def run_on_new_hosts(celery, bank, cache_scope: str):
    """One run of the DAG on workers with empty token caches; what the bank issued for it."""
    for host in celery.worker_hosts:
        host.forget_tokens()
    bank.reset_counters()
    celery.create_connection("bankapi_default", form_connection(bank, cache_scope=cache_scope))
    result = celery.wait_for_run(DAG_ID, celery.trigger(DAG_ID))
    assert result.state == "success", celery.explain([result])
    assert result.task_states == {("fetch_balance", index): "success" for index in range(len(ACCOUNTS))}
    assert celery.xcom(result, "fetch_balance", map_index=7) == {ACCOUNTS[7]: data.balance(ACCOUNTS[7])}
    ran = {host.name: len(host.task_logs(DAG_ID, result.run_id)) for host in celery.worker_hosts}
    assert sum(ran.values()) == len(ACCOUNTS)
    assert all(ran.values()), f"a worker ran no task: {ran}"  # both hosts took part
    counters = bank.counters()
    assert counters["api_requests"] == len(ACCOUNTS)
    return counters["tokens_issued"]


def cached_tokens(celery) -> dict[str, set[str]]:
    return {
        host.name: {json.loads(path.read_text())["access_token"] for path in host.token_files()}
        for host in celery.worker_hosts
    }


def test_two_workers_share_tokens_per_cache_scope(celery, bank, request):
    for variable in variables(celery):
        celery.call("DELETE", f"/api/v2/variables/{variable['key']}", 204)
    secrets = []

    # cluster, a cold start: the renewal claim settles both workers on one token, unless a Variable write
    # takes longer than the claim's settle time to land (a loaded API server): then one more, never more
    # than one per worker.
    cold = run_on_new_hosts(celery, bank, "cluster")
    assert 1 <= cold <= len(celery.worker_hosts)
    assert variables(celery, CLAIM_PREFIX) == [], "a renewal claim outlived its renewal"
    (variable,) = variables(celery)  # written by a task through the Task SDK, from a Celery worker
    assert json.loads(variable["value"])["access_token"] == "***"  # the API masks the token in it
    secrets += secrets_of(bank, celery.worker_hosts)

    # cluster, the next run on new machines: the token in the Variable serves every task.
    assert run_on_new_hosts(celery, bank, "cluster") == 0
    tokens = cached_tokens(celery)
    assert len(set().union(*tokens.values())) == 1, "the workers cached different tokens"
    secrets += secrets_of(bank, celery.worker_hosts)

    # host: one token per worker machine.
    assert run_on_new_hosts(celery, bank, "host") == len(celery.worker_hosts)
    secrets += secrets_of(bank, celery.worker_hosts)

    leaks = celery.files_holding(secrets)
    assert not leaks, f"secrets in files under AIRFLOW_HOME: {leaks}"
    report(request, f"tokens issued for {len(ACCOUNTS)} tasks on 2 Celery workers: cluster {cold} on a cold "
                    f"start, 0 on the next run on new machines; host {len(celery.worker_hosts)}")


def test_celery_workers_do_not_run_connection_tests_yet(celery, bank):
    # The README sends users to the LocalExecutor for a connection test on the workers: Celery's executor
    # (apache-airflow-providers-celery 3.26.0) has no connection-test support, and the scheduler says so.
    # When a release adds it, this fails, and the README's table should change.
    status = celery.test_on_worker("bankapi_on_celery", form_connection(bank))
    assert status["state"] == "failed", status
    assert "does not support connection testing" in status["result_message"]

"""Balances with dynamic task mapping: one task instance per account, one token for all of them.

What it shows
    The same job as ``bankapi_hourly_balances``, split with ``.expand()``: a task lists the accounts,
    ``BankingApiBalanceOperator`` is mapped over them (one task instance, and one JSON Lines file, per
    account), and a last task sums up what was written. Each instance can be retried, cleared or
    inspected on its own; a failing account fails only its own instance.

    The instances run in separate processes, yet the bank issues **one** token for all of them: the
    hook caches the token for every task process of a worker machine (the connection's
    ``cache_scope``, default ``host``). With workers on several machines (Celery, Kubernetes), set
    ``cache_scope`` to ``cluster`` in the connection's extras and they share it through an Airflow
    Variable.

How to adapt it
    - Connection ``bankapi_default`` (type "Banking API"): see ``bankapi_hourly_balances``.
    - Accounts: the ``account_ids`` Param; or let ``account_list`` compute them (from a table, a
      file...): whatever list it returns is what gets mapped.
    - Concurrency: ``max_active_tis_per_dagrun`` bounds how many accounts are fetched at once (the
      bank rate-limits per credential).
    - Where the files go: the Airflow Variable ``bankapi_output_base`` (default
      ``file://$AIRFLOW_HOME/bankapi-output``, private to Airflow's user); each run writes
      ``<base>/balances-by-account/<run time>/<account>.jsonl``.
"""

from __future__ import annotations

import datetime
import os

from airflow.sdk import DAG, Param, task

from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator

# A Variable read when the task runs (not when the file is parsed). The default is a folder of this Airflow
# installation, private to its user: never the shared temp directory, where another user may make it first.
AIRFLOW_HOME = os.path.expanduser(os.environ.get("AIRFLOW_HOME", "~/airflow"))
DEFAULT_OUTPUT_BASE = f"file://{AIRFLOW_HOME}/bankapi-output"
OUTPUT_BASE = f"{{{{ var.value.get('bankapi_output_base', {DEFAULT_OUTPUT_BASE!r}) }}}}"

with DAG(
    dag_id="bankapi_balances_mapped",
    description="Balances, one mapped task per account, one token for all.",
    doc_md=__doc__,
    schedule="@hourly",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": datetime.timedelta(minutes=2)},
    params={
        "account_ids": Param(
            ["123", "456", "789", "1001"],
            type="array",
            items={"type": "string"},
            description="The accounts whose balances to fetch, one mapped task each.",
        ),
    },
    tags=["bankapi", "example"],
):

    @task
    def account_list(params=None) -> list[str]:
        """The accounts to map over (here the Param; could be a query, a file, GET /accounts...)."""
        return [str(account) for account in params["account_ids"]]

    @task
    def summary(written) -> dict:
        """One line per run: how many files and balances the mapped instances wrote, and where."""
        files = sorted(item["path"] for item in written)
        return {"files": files, "balances": sum(item["records"] for item in written)}

    balances = BankingApiBalanceOperator.partial(
        task_id="fetch_balance",
        bankapi_conn_id="bankapi_default",
        max_workers=1,
        max_active_tis_per_dagrun=4,
        map_index_template="{{ task.account_id }}",  # the UI labels each instance with its account
        output_path=OUTPUT_BASE
        + "/balances-by-account/{{ dag_run.run_after | ts_nodash }}/{{ task.account_id }}.jsonl",
        asset_alias="bankapi_balances_by_account",
    ).expand(account_id=account_list())

    summary(balances.output)

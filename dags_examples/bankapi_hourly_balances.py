"""Hourly balances of a list of accounts, written to object storage as JSON Lines.

What it shows
    ``BankingApiBalanceOperator`` fetching the balances of several accounts in one task (a few calls
    at once, all with one token) and writing them to one JSON Lines file per run, one account per
    line. The file is announced as an asset event through the asset alias ``bankapi_balances``, so
    every file written shows up in Airflow's Assets view with its record count.

How to adapt it
    - Connection ``bankapi_default`` (type "Banking API"): the Base URL, the credential's Client ID
      and Client secret from CORE, the client certificate and key (``client_cert`` +
      ``client_private_key``, or ``client_pfx_secret``) and the bank's CA (``ca_cert``).
    - Accounts: the ``account_ids`` Param (change its default here, or per run in the trigger form).
    - Where the files go: the Airflow Variable ``bankapi_output_base``, any object-storage URL, e.g.
      ``s3://aws_default@my-bucket/bank`` (the ``aws_default`` connection gives the credentials) or
      ``file:///data/bank``; default ``file://$AIRFLOW_HOME/bankapi-output``. Each run writes
      ``<base>/balances/<run time>.jsonl``.
    - CSV instead of JSON Lines: end the file name with ``.csv``.
    - A failed account does not lose the others: they are written first, then the task fails and names
      the failed accounts with the bank's reason (retries re-fetch the whole list).
"""

from __future__ import annotations

import datetime
import os

from airflow.sdk import DAG, Param

from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator

# A Variable read when the task runs (not when the file is parsed). The default is a folder of this Airflow
# installation, private to its user: never the shared temp directory, where another user may make it first.
AIRFLOW_HOME = os.path.expanduser(os.environ.get("AIRFLOW_HOME", "~/airflow"))
DEFAULT_OUTPUT_BASE = f"file://{AIRFLOW_HOME}/bankapi-output"
OUTPUT_BASE = f"{{{{ var.value.get('bankapi_output_base', {DEFAULT_OUTPUT_BASE!r}) }}}}"

with DAG(
    dag_id="bankapi_hourly_balances",
    description="Hourly balances of a list of accounts to object storage (JSON Lines).",
    doc_md=__doc__,
    schedule="@hourly",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": datetime.timedelta(minutes=2)},
    params={
        "account_ids": Param(
            ["123", "456", "789"],
            type="array",
            items={"type": "string"},
            description="The accounts whose balances to fetch.",
        ),
    },
    tags=["bankapi", "example"],
):
    BankingApiBalanceOperator(
        task_id="fetch_balances",
        bankapi_conn_id="bankapi_default",
        account_ids="{{ params.account_ids | join(',') }}",
        max_workers=4,
        # run_after, not logical_date: Airflow 3 runs triggered without a logical date have none.
        output_path=OUTPUT_BASE + "/balances/{{ dag_run.run_after | ts_nodash }}.jsonl",
        asset_alias="bankapi_balances",
    )

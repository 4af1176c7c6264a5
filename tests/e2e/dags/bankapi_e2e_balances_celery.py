"""24 balance tasks mapped over accounts, for the Celery workers of the end-to-end tests to share out."""

from __future__ import annotations

import datetime

from airflow.sdk import DAG

from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator

ACCOUNTS = [str(5000 + index) for index in range(24)]

with DAG(
    dag_id="bankapi_e2e_balances_celery",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
):
    BankingApiBalanceOperator.partial(
        task_id="fetch_balance", bankapi_conn_id="bankapi_default", max_workers=1
    ).expand(account_id=ACCOUNTS)

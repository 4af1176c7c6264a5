"""Mapped balance tasks with retries, for the retry policy under dag.test()."""

from __future__ import annotations

import datetime

from airflow.sdk import DAG

from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator

with DAG(
    dag_id="bankapi_retry_policy",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
):
    # No delay between tries: every try Airflow makes runs in the same dag.test().
    BankingApiBalanceOperator.partial(
        task_id="fetch_balance", retries=3, retry_delay=datetime.timedelta(0)
    ).expand(account_id=["101", "102", "103", "104"])

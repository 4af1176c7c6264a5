"""Tasks whose failures the provider's retry policy decides, for the end-to-end tests of retries."""

from __future__ import annotations

import datetime

from airflow.sdk import DAG

from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator, BankingApiOperator

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
RATE_LIMITED_ACCOUNT = "4242"

with DAG(dag_id="bankapi_e2e_refused", schedule=None, start_date=START, catchup=False):
    # 24 tasks, 3 retries each: without the policy, 96 refused token requests for one wrong secret.
    BankingApiBalanceOperator.partial(
        task_id="fetch_balance",
        bankapi_conn_id="bankapi_wrong_secret",
        retries=3,
        retry_delay=datetime.timedelta(seconds=1),
    ).expand(account_id=[str(6000 + index) for index in range(24)])

with DAG(dag_id="bankapi_e2e_rate_limited", schedule=None, start_date=START, catchup=False):
    BankingApiOperator(
        task_id="fetch_balance",
        bankapi_conn_id="bankapi_no_retries",
        endpoint=f"/accounts/{RATE_LIMITED_ACCOUNT}/balance",
        retries=2,
        retry_delay=datetime.timedelta(seconds=1),
    )

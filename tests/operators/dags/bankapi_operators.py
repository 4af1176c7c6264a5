"""Operator DAGs run with dag.test() by tests/operators/test_operators.py against the sandbox bank.

Paths and account ids come from the run's conf; ``render_template_as_native_obj`` keeps a list a list.
"""

from __future__ import annotations

import datetime

from airflow.sdk import DAG, task

from airflow_provider_bankapi.client.api import next_cursor_params
from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator, BankingApiOperator

START = datetime.datetime(2024, 1, 1)
OUT = "{{ dag_run.conf['out'] }}"

with DAG(
    "bankapi_generic_calls",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
):
    BankingApiOperator(task_id="accounts", endpoint="/accounts")
    BankingApiOperator(
        task_id="transaction_count",
        endpoint="/accounts/{{ dag_run.conf['account'] }}/transactions",
        query_params={"limit": 10},
        pagination_function=next_cursor_params,
        response_filter=lambda pages: {"pages": len(pages), "items": sum(len(p["items"]) for p in pages)},
    )
    BankingApiOperator(
        task_id="transactions_file",
        endpoint="/accounts/{{ dag_run.conf['account'] }}/transactions",
        query_params={"limit": "{{ dag_run.conf['limit'] }}"},
        pagination_function=next_cursor_params,
        output_path=OUT + "/transactions-{{ ds }}.jsonl",
        asset_alias="bankapi_test_transactions",
    )
    BankingApiOperator(
        task_id="balance_file", endpoint="/accounts/123/balance", output_path=OUT + "/one.jsonl"
    )

with DAG("bankapi_generic_refusals", schedule=None, start_date=START, catchup=False):
    BankingApiOperator(
        task_id="check_fails",
        endpoint="/accounts",
        response_check=lambda response: len(response["items"]) > 99,
    )
    BankingApiOperator(task_id="token_endpoint", endpoint="/auth/token-v2", method="POST")

with DAG("bankapi_endpoint_from_conf", schedule=None, start_date=START, catchup=False):
    BankingApiOperator(task_id="from_conf", endpoint="{{ dag_run.conf['endpoint'] }}")

with DAG(
    "bankapi_balances", schedule=None, start_date=START, catchup=False, render_template_as_native_obj=True
):
    BankingApiBalanceOperator(task_id="to_xcom", account_ids="{{ dag_run.conf['accounts'] }}", max_workers=3)
    BankingApiBalanceOperator(
        task_id="to_csv", account_ids="{{ dag_run.conf['accounts'] }}", output_path=OUT + "/balances.csv"
    )
    BankingApiBalanceOperator(
        task_id="to_jsonl",
        account_ids="{{ dag_run.conf['accounts'] }}",
        output_path=OUT + "/balances-{{ ds }}.data",
        output_format="jsonl",
        asset_alias="bankapi_test_balances",
    )
    BankingApiBalanceOperator.partial(task_id="mapped", max_workers=1).expand(
        account_id=["123", "456", "789"]
    )

with DAG(
    "bankapi_balances_partly_failing",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
):
    BankingApiBalanceOperator(
        task_id="to_file", account_ids="{{ dag_run.conf['accounts'] }}", output_path=OUT + "/partial.jsonl"
    )
    BankingApiBalanceOperator(task_id="to_xcom", account_ids="{{ dag_run.conf['accounts'] }}")

with DAG("bankapi_in_processes", schedule=None, start_date=START, catchup=False):
    # Run with the LocalExecutor: every task instance in a process of its own, logs through the masker.
    BankingApiOperator(task_id="accounts", endpoint="/accounts")
    BankingApiBalanceOperator(task_id="balances", account_ids=["123", "456"], output_path=OUT + "/b.jsonl")
    BankingApiBalanceOperator.partial(task_id="mapped").expand(account_id=["123", "456"])

with DAG(
    "bankapi_transactions_rerun",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
):
    # The same file on every run: a rerun replaces it whole, or leaves the previous one as it was.
    BankingApiOperator(
        task_id="transactions_file",
        endpoint="/accounts/123/transactions",
        query_params={"limit": 10},
        pagination_function=next_cursor_params,
        output_path=OUT + "/transactions.jsonl",
        asset_alias="",
    )

with DAG("bankapi_raw_answers", schedule=None, start_date=START, catchup=False):
    # The sandbox's CSV statement answers only an Accept that admits CSV: the headers reach the bank.
    STATEMENT = "/accounts/123/statement.csv"
    CSV = {"Accept": "text/csv", "X-Request-Id": "{{ run_id }}"}
    BankingApiOperator(task_id="statement_text", endpoint=STATEMENT, headers=CSV, response_type="text")
    BankingApiOperator(
        task_id="statement_rows",
        endpoint=STATEMENT,
        headers=CSV,
        response_type="bytes",
        response_filter=lambda body: body.count(b"\n") - 1,
    )
    BankingApiOperator(
        task_id="statement_file",
        endpoint=STATEMENT,
        headers=CSV,
        response_type="bytes",
        output_path=OUT + "/statement-{{ ds }}.csv",
        asset_alias="bankapi_test_statement",
    )
    BankingApiOperator(task_id="without_accept", endpoint=STATEMENT, response_type="text")

# An Open Finance-shaped bank (sandbox illustrations): the same transactions walked three ways, exact money.
OPEN_FINANCE = "/open-banking/accounts/{{ dag_run.conf['account'] }}/transactions"
with DAG(
    "bankapi_bank_data", schedule=None, start_date=START, catchup=False, render_template_as_native_obj=True
):
    BankingApiOperator(
        task_id="links_walk",
        endpoint=OPEN_FINANCE,
        query_params={"page-size": "{{ dag_run.conf['page_size'] }}"},
        pagination="links",
        records_path="data",
        output_path=OUT + "/links.jsonl",
    )
    BankingApiOperator(
        task_id="link_header_walk",
        endpoint="/linked/accounts/{{ dag_run.conf['account'] }}/transactions",
        query_params={"page-size": "{{ dag_run.conf['page_size'] }}"},
        pagination="link_header",
        output_path=OUT + "/link_header.jsonl",
    )
    BankingApiOperator(
        task_id="page_walk",
        endpoint=OPEN_FINANCE,
        query_params={"page-size": "{{ dag_run.conf['page_size'] }}"},
        pagination="page",
        output_path=OUT + "/page.csv",
    )
    balances = BankingApiOperator(
        task_id="balances", endpoint="/open-banking/accounts/{{ dag_run.conf['account'] }}/balances"
    )
    BankingApiOperator(
        task_id="balances_file",
        endpoint="/open-banking/accounts/{{ dag_run.conf['account'] }}/balances",
        output_path=OUT + "/balances.jsonl",
    )

    @task
    def amounts_downstream(balance: dict) -> dict:
        # What a downstream task reads back from XCom: Decimals with the bank's digits.
        data = balance["data"]
        return {
            "types": sorted({type(data[key]["amount"]).__name__ for key in data if key.endswith("Amount")}),
            "available": str(data["availableAmount"]["amount"]),
            "invested": str(data["automaticallyInvestedAmount"]["amount"]),
        }

    amounts_downstream(balances.output)

with DAG("bankapi_foreign_next_link", schedule=None, start_date=START, catchup=False):
    BankingApiOperator(
        task_id="foreign_link",
        endpoint="/open-banking/accounts/123/transactions",
        query_params={"page-size": 10, "next-origin": "{{ dag_run.conf['foreign'] }}"},
        pagination="links",
        output_path=OUT + "/foreign.jsonl",
    )

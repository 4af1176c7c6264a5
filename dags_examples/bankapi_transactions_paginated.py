"""Any protected resource, page by page, to JSON Lines: an account's transactions (sandbox illustration).

What it shows
    ``BankingApiOperator``, the generic call, on a resource shaped like an Open Finance Brasil bank's:
    ``{"data": [...], "links": {"next": "https://..."}, "meta": {"totalPages": N}}`` pages.
    ``pagination="links"`` follows each page's ``links.next`` (only under the connection's Base URL: a
    link anywhere else fails the task before any request to it), ``records_path="data"`` writes one JSON
    line per transaction, each with ``fetched_at`` (UTC) and its amount with the bank's exact digits
    (``{"amount": 123.4500, "currency": "BRL"}``), and the task returns ``{"path", "records", "pages"}``:
    one request per page.

    **Sandbox illustration.** The bank documents only the token and the balance endpoints. The
    ``/open-banking/accounts/{id}/transactions?page=&page-size=`` resource and its pages are the provider's
    sandbox bank's, made up to show the generic call and pagination; they are not the bank's documented
    contract. Point the operator at a resource the bank documents for you.

How to adapt it
    - Connection ``bankapi_default`` (type "Banking API"): see ``bankapi_hourly_balances``.
    - ``endpoint``, ``query_params``, ``pagination`` and ``records_path`` for your resource:
      ``pagination="link_header"`` for an RFC 8288 ``Link`` header, ``"page"`` for ``page=1, 2...`` until
      ``meta.totalPages``, ``"cursor"`` for ``{"next_cursor": ...}``, or a value of
      ``airflow_provider_bankapi.pagination`` for other field names.
    - Params ``account_id`` and ``page_size``; the Airflow Variable ``bankapi_output_base`` (default
      ``file://$AIRFLOW_HOME/bankapi-output``, private to Airflow's user); each run writes
      ``<base>/transactions/<account>/<run time>.jsonl``.
    - Without ``output_path`` the pages go to XCom instead: fine for a few, not for a history.
"""

from __future__ import annotations

import datetime
import os

from airflow.sdk import DAG, Param

from airflow_provider_bankapi.operators.bankapi import BankingApiOperator

# A Variable read when the task runs (not when the file is parsed). The default is a folder of this Airflow
# installation, private to its user: never the shared temp directory, where another user may make it first.
AIRFLOW_HOME = os.path.expanduser(os.environ.get("AIRFLOW_HOME", "~/airflow"))
DEFAULT_OUTPUT_BASE = f"file://{AIRFLOW_HOME}/bankapi-output"
OUTPUT_BASE = f"{{{{ var.value.get('bankapi_output_base', {DEFAULT_OUTPUT_BASE!r}) }}}}"


with DAG(
    dag_id="bankapi_transactions_paginated",
    description="A protected resource, page by page, to JSON Lines (sandbox illustration).",
    doc_md=__doc__,
    schedule="@daily",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": datetime.timedelta(minutes=5)},
    params={
        "account_id": Param("123", type="string", description="The account whose transactions to export."),
        "page_size": Param(50, type="integer", minimum=1, maximum=100, description="Records per page."),
    },
    tags=["bankapi", "example", "sandbox-illustration"],
):
    BankingApiOperator(
        task_id="export_transactions",
        bankapi_conn_id="bankapi_default",
        endpoint="/open-banking/accounts/{{ params.account_id }}/transactions",
        query_params={"page-size": "{{ params.page_size }}"},
        pagination="links",  # each page's links.next, under the Base URL only
        records_path="data",  # one line per transaction
        output_path=(
            OUTPUT_BASE + "/transactions/{{ params.account_id }}/{{ dag_run.run_after | ts_nodash }}.jsonl"
        ),
        asset_alias="bankapi_transactions",
    )

"""Any protected resource, page by page, to JSON Lines: an account's transactions (sandbox illustration).

What it shows
    ``BankingApiOperator``, the generic call: a templated endpoint and query parameters, a
    ``pagination_function`` that turns one page into the parameters of the next, and ``output_path``:
    the records of every page (the items of each page's ``"items"`` list) are streamed into one JSON
    Lines file, and the task returns ``{"path", "records", "pages"}``.

    **Sandbox illustration.** The bank documents only the token and the balance endpoints. The
    ``/accounts/{id}/transactions?limit=&cursor=`` resource and its ``{"items": [...], "next_cursor":
    ...}`` pages are the provider's sandbox bank's, made up to show the generic call and pagination; they
    are not the bank's documented contract. Point the operator at a resource the bank documents for
    you, and write the pagination function for the way that resource pages.

How to adapt it
    - Connection ``bankapi_default`` (type "Banking API"): see ``bankapi_hourly_balances``.
    - ``endpoint``, ``query_params`` and ``next_page`` for your resource. ``next_page`` gets each page's
      JSON and returns the parameters to add for the next request, or None after the last page (an
      offset/limit API returns ``{"offset": ...}``; a link-based one, the link's query).
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


def next_page(page: dict) -> dict | None:
    """Cursor pagination as the sandbox does it: ask again with ``cursor=<next_cursor>`` until it is null."""
    cursor = page.get("next_cursor")
    return {"cursor": cursor} if cursor else None


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
        endpoint="/accounts/{{ params.account_id }}/transactions",
        query_params={"limit": "{{ params.page_size }}"},
        pagination_function=next_page,
        output_path=(
            OUTPUT_BASE + "/transactions/{{ params.account_id }}/{{ dag_run.run_after | ts_nodash }}.jsonl"
        ),
        asset_alias="bankapi_transactions",
    )

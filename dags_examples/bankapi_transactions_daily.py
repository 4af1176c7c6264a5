"""An account's transactions, one São Paulo business date a run, each transaction written exactly once.

What it shows
    ``BankingApiOperator`` with ``window=BookingWindow(...)`` and ``dedupe_key="transactionId"``. The DAG
    runs at midnight in São Paulo; each run's data interval is the business date that just closed
    (``00:00`` to ``24:00`` São Paulo, ``03:00Z`` to ``03:00Z``). The window asks the bank for
    ``fromBookingDate`` = that date minus the one-day lookback and ``toBookingDate`` = that date: the day
    before is read again because the bank posts some transactions late (final only at D+1). Those come
    back in the next run's answer; every transaction an earlier run already wrote is left out, so each
    one lands in exactly one file. A rerun of a date (clear the task) rewrites the same file with the same
    transactions: the written keys are remembered per data interval, in the asset state of the task's
    inlet ``bankapi__bankapi_transactions_daily__export_transactions__written_keys``, and only after the
    file is in place.

    **Sandbox illustration.** The bank documents only the token and the balance endpoints. The
    ``/open-banking/accounts/{id}/transactions?fromBookingDate=&toBookingDate=`` resource, its three
    transactions a day and the one of each day posted the next morning are the provider's sandbox bank's,
    made up to show booking windows; they are not the bank's documented contract.

To run it by hand, give the run a logical date (the trigger form's Logical date, or ``"logical_date"`` in
the REST API): the run then covers the business date before it. A run without one has no data interval,
and the task fails saying so.

How to adapt it
    - Connection ``bankapi_default`` (type "Banking API"): see ``bankapi_hourly_balances``.
    - ``BookingWindow(from_param=..., to_param=..., timezone=..., lookback=...)``: your bank's parameter
      names, time zone, and how late it posts (the lookback: a longer one reads more days again, and
      remembers their keys for longer).
    - ``dedupe_key``: the dotted path of a record's unique id.
    - Params ``account_id`` and ``page_size``; the Airflow Variable ``bankapi_output_base`` (default
      ``file://$AIRFLOW_HOME/bankapi-output``, private to Airflow's user); each run writes
      ``<base>/transactions-daily/<account>/<business date>.jsonl``.
"""

from __future__ import annotations

import datetime
import os

from airflow.sdk import DAG, Param
from airflow.timetables.trigger import CronTriggerTimetable

from airflow_provider_bankapi.operators.bankapi import BankingApiOperator, BookingWindow

AIRFLOW_HOME = os.path.expanduser(os.environ.get("AIRFLOW_HOME", "~/airflow"))
DEFAULT_OUTPUT_BASE = f"file://{AIRFLOW_HOME}/bankapi-output"
OUTPUT_BASE = f"{{{{ var.value.get('bankapi_output_base', {DEFAULT_OUTPUT_BASE!r}) }}}}"
# The business date a run covers: its data interval's start, in São Paulo. A run triggered by hand without
# a logical date has no data interval: the window then fails the task saying so (not this template).
BUSINESS_DATE = (
    "{{ data_interval_start.in_timezone('America/Sao_Paulo') | ds "
    "if data_interval_start is defined and data_interval_start else 'no-data-interval' }}"
)


with DAG(
    dag_id="bankapi_transactions_daily",
    description="Transactions of each São Paulo business date, each written once (sandbox illustration).",
    doc_md=__doc__,
    # Midnight in São Paulo, covering the day that just closed (Airflow 3's plain "@daily" gives a run no
    # interval to cover).
    schedule=CronTriggerTimetable(
        "0 0 * * *", timezone="America/Sao_Paulo", interval=datetime.timedelta(days=1)
    ),
    start_date=datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc),
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
        pagination="links",
        records_path="data",
        window=BookingWindow(
            from_param="fromBookingDate",
            to_param="toBookingDate",
            timezone="America/Sao_Paulo",
            lookback=datetime.timedelta(days=1),  # the bank posts some transactions at D+1
        ),
        dedupe_key="transactionId",
        output_path=OUTPUT_BASE + "/transactions-daily/{{ params.account_id }}/" + BUSINESS_DATE + ".jsonl",
        asset_alias="bankapi_transactions_daily",
    )

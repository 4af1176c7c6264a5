"""Wait, without holding a worker, until an account can cover a payout; then make the payout.

What it shows
    ``BankingApiBalanceSensor`` in deferrable mode: it looks at the balance once from the worker and,
    if ``available`` is still below the amount, hands the wait to Airflow's triggerer, which polls
    the bank every ``POKE_INTERVAL`` (backing off on 429/5xx, stopping at once on a refused
    credential or certificate) while no worker slot is used. When the funds are there the task
    resumes, and its XCom (the ``available`` amount it saw, as the bank's exact text) goes to the
    payout task. Amounts are compared as ``Decimal``: no float rounding on money.

    The payout task is a **stand-in**: it only logs what it would pay. The bank's documentation
    covers the token and the balance endpoints only; it does not document a payments API, so this
    example does not invent one. Put your own payment call (or a message to the team that makes it)
    in its place.

How to adapt it
    - Connection ``bankapi_default`` (type "Banking API"): see ``bankapi_hourly_balances``. The
      triggerer reads the connection too (by its id; no secret is stored with the deferred task).
    - Params: ``account_id``, ``amount`` (text, for exact cents) and ``beneficiary``; set them in the
      trigger form, or trigger the DAG from an upstream system with a ``conf``.
    - ``POKE_INTERVAL`` (how often the triggerer asks) and ``timeout`` (when to give up). A triggerer
      must be running (``airflow triggerer``) for deferrable tasks to resume.
"""

from __future__ import annotations

import datetime
import logging
import os

from airflow.sdk import DAG, Param, task

from airflow_provider_bankapi.sensors.bankapi import BankingApiBalanceSensor

# Seconds between two looks at the balance. The environment variable lets a test or a demo shorten it
# without editing the file; in your copy, a constant is enough.
POKE_INTERVAL = float(os.environ.get("BANKAPI_FUNDS_POKE_INTERVAL", "300"))

log = logging.getLogger(__name__)

with DAG(
    dag_id="bankapi_wait_for_funds",
    description="A deferrable balance sensor gating a payout (the payout is a stand-in).",
    doc_md=__doc__,
    schedule=None,  # triggered when a payout is due
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    params={
        "account_id": Param("123", type="string", description="The account the payout is made from."),
        "amount": Param(
            "1500.00",
            type="string",
            pattern=r"^\d+(\.\d{1,2})?$",
            description="The payout amount; the wait ends once 'available' is at least this.",
        ),
        "beneficiary": Param("ACME Ltda", type="string", description="Who is paid (shown in the log)."),
    },
    tags=["bankapi", "example"],
):
    funds = BankingApiBalanceSensor(
        task_id="wait_for_funds",
        bankapi_conn_id="bankapi_default",
        account_id="{{ params.account_id }}",
        threshold="{{ params.amount }}",
        comparison=">=",
        balance_field="available",
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=datetime.timedelta(hours=6).total_seconds(),
    )

    @task
    def payout(available: str, params=None) -> dict:
        """Stand-in for the payment: logs and returns what it would pay (no payments API is documented)."""
        order = {
            "from_account": params["account_id"],
            "amount": params["amount"],
            "beneficiary": params["beneficiary"],
            "available_when_checked": available,
        }
        log.info(
            "Would pay %s to %s from account %s (available when checked: %s). Replace this task with "
            "your payment call.",
            order["amount"],
            order["beneficiary"],
            order["from_account"],
            available,
        )
        return order

    payout(funds.output)

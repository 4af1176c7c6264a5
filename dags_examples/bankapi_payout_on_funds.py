"""Start a payout the moment an account's balance reaches an amount: event-driven, no schedule, no sensor.

What it shows
    An ``AssetWatcher`` on ``BankingApiEventTrigger``: Airflow's triggerer polls the balance every
    ``POKE_INTERVAL`` for as long as this DAG is active (unpaused), and each time ``available`` comes
    to reach ``AMOUNT`` it records an event on the asset ``bankapi_funds_<account>``, which starts this
    DAG. One run per crossing: a balance that stays above the amount does not start a run per poll;
    it must fall below and come back first. The condition is the balance sensor's (compared as
    ``Decimal``: no float rounding on money). No task waits, and no worker slot is held.

    The payout task is a **stand-in**: it only logs what it would pay (the bank documents no payments
    API). Put your own payment call in its place.

How to adapt it
    - Connection ``bankapi_default`` (type "Banking API"): see ``bankapi_hourly_balances``. The triggerer
      reads it by its id; no secret is stored with the trigger.
    - ``ACCOUNT_ID``, ``AMOUNT`` (text, for exact cents) and ``POKE_INTERVAL`` below. A triggerer must be
      running (``airflow triggerer``), and the DAG unpaused: a paused DAG's watcher does not poll.
    - Another condition on another resource: ``BankingApiEventTrigger(endpoint=..., condition=Condition(
      field="status", comparison="==", value="ready").to_dict())`` (``triggers.polling.Condition``).
"""

from __future__ import annotations

import datetime
import logging
import os

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_bankapi.triggers.events import BankingApiEventTrigger

# The environment variables let a test or a demo change them without editing the file; in your copy,
# constants are enough.
ACCOUNT_ID = os.environ.get("BANKAPI_PAYOUT_ACCOUNT", "123")
AMOUNT = os.environ.get("BANKAPI_PAYOUT_AMOUNT", "1500.00")
POKE_INTERVAL = float(os.environ.get("BANKAPI_PAYOUT_POKE_INTERVAL", "300"))

log = logging.getLogger(__name__)

funds = Asset(
    f"bankapi_funds_{ACCOUNT_ID}",
    watchers=[
        AssetWatcher(
            name=f"bankapi_funds_{ACCOUNT_ID}_watcher",
            trigger=BankingApiEventTrigger.for_balance(
                ACCOUNT_ID, AMOUNT, bankapi_conn_id="bankapi_default", poke_interval=POKE_INTERVAL
            ),
        )
    ],
)

with DAG(
    dag_id="bankapi_payout_on_funds",
    description="An AssetWatcher on the balance starts a payout when the funds arrive (payout: a stand-in).",
    doc_md=__doc__,
    schedule=[funds],
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    tags=["bankapi", "example"],
):

    @task
    def payout(triggering_asset_events=None) -> dict:
        """Stand-in for the payment: logs and returns what it would pay (no payments API is documented)."""
        seen = [
            event.extra.get("payload", {}).get("value")
            for events in (triggering_asset_events or {}).values()
            for event in events
        ]
        available = seen[-1] if seen else None
        order = {"from_account": ACCOUNT_ID, "amount": AMOUNT, "available_when_seen": available}
        log.info(
            "Would pay %s from account %s (available when seen: %s). Replace this task with your payment "
            "call.",
            AMOUNT,
            ACCOUNT_ID,
            available,
        )
        return order

    payout()

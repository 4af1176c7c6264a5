"""The hourly balances DAG of the simulated day (tests/day/test_faulty_day.py), one run per hour.

The run's ``conf`` carries the hour, the accounts (one string of ids) and the output folder. The
operator writes the balances it got to ``<output>/<hour>.jsonl``; when a try fails, its callback writes
the failure report ``<output>/<hour>.try<N>.failures.json``: every account not delivered, with the
error and the bank's reason, as a user's callback would forward them.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_bankapi.operators.bankapi import BalancesPartlyFailedError, BankingApiBalanceOperator


def _reason(error: BaseException) -> dict:
    return {
        "error": type(error).__name__,
        "status_code": getattr(error, "status_code", None),
        "bank_reason": getattr(error, "bank_reason", None),
        "message": getattr(error, "message", str(error)),
    }


def write_failure_report(context) -> None:
    conf = context["dag_run"].conf
    error = context["exception"]
    if isinstance(error, BalancesPartlyFailedError):
        failed = {account: _reason(cause) for account, cause in error.failed.items()}
    else:  # the whole try failed (e.g. no token): every account is named with that error
        failed = dict.fromkeys(conf["accounts"].split(), _reason(error))
    report = Path(conf["output"]) / f"{conf['hour']:02d}.try{context['ti'].try_number}.failures.json"
    report.write_text(json.dumps({"delivered_to": getattr(error, "delivered_to", None), "failed": failed}))


with DAG(
    "bankapi_balances_day",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=0)},
):
    BankingApiBalanceOperator(
        task_id="balances",
        account_ids="{{ dag_run.conf['accounts'] }}",
        output_path="file://{{ dag_run.conf['output'] }}/{{ '%02d' % dag_run.conf['hour'] }}.jsonl",
        asset_alias="",
        max_workers=4,
        on_retry_callback=write_failure_report,
        on_failure_callback=write_failure_report,
    )

"""``bankapi_transactions_daily`` for real: consecutive São Paulo business dates against the sandbox bank,
whose last transaction of each date is posted the next morning, each written exactly once.
"""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path

import pytest
from airflow_harness import run_dag
from written import jsonl_records

from bankapi_sandbox import data

pytestmark = pytest.mark.airflow

EXAMPLE = Path(__file__).resolve().parents[2] / "dags_examples" / "bankapi_transactions_daily.py"
ACCOUNT = "123"
#: The runs of three consecutive business dates: each at midnight in São Paulo (03:00 UTC) after its date.
BUSINESS_DATES = [datetime.date(2026, 12, 4), datetime.date(2026, 12, 5), datetime.date(2026, 12, 6)]


def run_after(business_date: datetime.date) -> datetime.datetime:
    after = business_date + datetime.timedelta(days=1)
    return datetime.datetime(after.year, after.month, after.day, 3, tzinfo=datetime.timezone.utc)


def booked_ids(first: datetime.date, last: datetime.date, *, late_of_last: bool) -> list[str]:
    """The sandbox's transaction ids booked from ``first`` to ``last``, the last date's late one or not."""
    ids = []
    day = first
    while day <= last:
        for number in range(data.BOOKED_PER_DAY):
            if day < last or late_of_last or not data.is_posted_late(number):
                ids.append(f"{ACCOUNT}-{day:%Y%m%d}-{number}")
        day += datetime.timedelta(days=1)
    return ids


@pytest.fixture
def daily(bankapi_sandbox, airflow_connection, tmp_path):
    """Run the example for one business date; return the ids of the file it wrote and the task's XCom."""
    airflow_connection("bankapi_default", bankapi_sandbox.connection_json)
    env = {"AIRFLOW_VAR_BANKAPI_OUTPUT_BASE": f"file://{tmp_path}", "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def run(business_date: datetime.date) -> tuple[list[str], dict]:
        result = run_dag(EXAMPLE, env=env, logical_date=run_after(business_date))
        assert result.state == "success", result.task_states
        written = tmp_path / "transactions-daily" / ACCOUNT / f"{business_date}.jsonl"
        rows = jsonl_records(written.read_text())  # each with its fetched_at, checked there
        return [row["transactionId"] for row in rows], result.xcom("export_transactions")

    return run


def test_three_days_write_every_transaction_once_and_a_rerun_rewrites_its_own(daily):
    files = {day: daily(day) for day in BUSINESS_DATES}

    first, second, third = (files[day][0] for day in BUSINESS_DATES)
    # The first run asks for its date and the day before (the lookback): nothing was written before it.
    assert first == booked_ids(datetime.date(2026, 12, 3), BUSINESS_DATES[0], late_of_last=False)
    # The late posting of 12-04 appears when the next run asks for 12-04 again, and only it is new there.
    late = f"{ACCOUNT}-20261204-2"
    assert late not in first
    assert second == [late, *booked_ids(BUSINESS_DATES[1], BUSINESS_DATES[1], late_of_last=False)]
    assert third == [
        f"{ACCOUNT}-20261205-2",
        *booked_ids(BUSINESS_DATES[2], BUSINESS_DATES[2], late_of_last=False),
    ]
    every = Counter(first + second + third)
    assert set(every.values()) == {1}, [key for key, count in every.items() if count > 1]
    assert sorted(every) == sorted(
        booked_ids(datetime.date(2026, 12, 3), BUSINESS_DATES[2], late_of_last=False)
    )
    assert [files[day][1]["records"] for day in BUSINESS_DATES] == [5, 3, 3]

    # Clearing the second date and running it again: the same transactions, neither fewer (its own keys
    # are not another run's) nor more (the first run's 12-04 transactions stay left out).
    rerun, summary = daily(BUSINESS_DATES[1])
    assert rerun == second
    assert summary["records"] == 3

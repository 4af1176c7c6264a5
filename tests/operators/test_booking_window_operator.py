"""``window=`` and ``dedupe_key=`` on ``BankingApiOperator``: refused while the DAG is parsed when they
cannot work, the asset that remembers the keys, and the query a run's data interval becomes.
"""

from __future__ import annotations

import datetime

import pytest
from airflow.sdk import DAG, Asset

from airflow_provider_bankapi.errors import ConfigurationError
from airflow_provider_bankapi.operators.bankapi import BankingApiOperator, BookingWindow

ENDPOINT = "/open-banking/accounts/123/transactions"
OUTPUT = "file:///tmp/never-written/tx.jsonl"


def operator(**arguments):
    with DAG("daily", schedule=None):
        return BankingApiOperator(task_id="export", endpoint=ENDPOINT, **arguments)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        pytest.param({"dedupe_key": "transactionId", "output_path": OUTPUT}, "dedupe_key", id="no-window"),
        pytest.param({"dedupe_key": "transactionId", "window": BookingWindow()}, "dedupe_key", id="no-file"),
        pytest.param(
            {"dedupe_key": " ", "window": BookingWindow(), "output_path": OUTPUT},
            "dedupe_key",
            id="blank-key",
        ),
        pytest.param({"window": {"from_param": "from"}}, "window", id="window-not-a-booking-window"),
        pytest.param(
            {"dedupe_key": "id", "window": BookingWindow(), "output_path": OUTPUT, "response_type": "text"},
            "dedupe_key",
            id="answer-not-json",
        ),
    ],
)
def test_what_cannot_work_is_refused_while_the_dag_is_parsed(arguments, field):
    with pytest.raises(ConfigurationError) as caught:
        operator(**arguments)
    assert caught.value.field == field


def test_the_written_keys_live_in_the_state_of_an_inlet_of_the_task_and_runs_go_one_at_a_time():
    task = operator(window=BookingWindow(), dedupe_key="transactionId", output_path=OUTPUT)
    assert task.inlets == [Asset(name="bankapi__daily__export__written_keys")]
    assert task.max_active_tis_per_dag == 1
    mine = operator(
        window=BookingWindow(), dedupe_key="transactionId", output_path=OUTPUT, max_active_tis_per_dag=3
    )
    assert mine.max_active_tis_per_dag == 3
    assert operator(window=BookingWindow()).inlets == []  # a window alone remembers nothing


def interval(day: int) -> dict:
    start = datetime.datetime(2026, 12, day, 3, tzinfo=datetime.timezone.utc)
    return {"data_interval_start": start, "data_interval_end": start + datetime.timedelta(days=1)}


def test_the_run_asks_for_its_booking_dates_beside_the_given_query():
    task = operator(window=BookingWindow(), query_params={"page-size": "50"})
    task._ask_for_booking_dates(interval(5))
    assert task.query_params == {
        "page-size": "50",
        "fromBookingDate": "2026-12-04",
        "toBookingDate": "2026-12-05",
    }


def test_a_query_that_sets_a_window_parameter_itself_is_refused():
    task = operator(window=BookingWindow(), query_params={"toBookingDate": "2026-01-01"})
    with pytest.raises(ConfigurationError) as caught:
        task._ask_for_booking_dates(interval(5))
    assert caught.value.field == "query_params"
    assert "toBookingDate" in str(caught.value)

"""Booking windows and written keys, pure: a data interval's São Paulo dates, what is written and kept."""

from __future__ import annotations

import datetime

import pytest

from airflow_provider_bankapi.booking_window import (
    BookingDates,
    BookingWindow,
    MissingRecordKeyError,
    WrittenKeys,
    interval_id,
    written_keys,
)
from airflow_provider_bankapi.documents import BankDecimal
from airflow_provider_bankapi.errors import ConfigurationError

UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)


def utc(day: int, hour: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 12, day, hour, tzinfo=UTC)


def date(day: int) -> datetime.date:
    return datetime.date(2026, 12, day)


@pytest.mark.parametrize(
    ("start", "end", "lookback", "first", "last"),
    [
        # A UTC day is 21:00 to 21:00 in São Paulo: it touches two local dates, both asked for.
        pytest.param(utc(5), utc(6), datetime.timedelta(0), date(4), date(5), id="utc-day-no-lookback"),
        pytest.param(utc(5), utc(6), DAY, date(3), date(5), id="utc-day-one-day-back"),
        # A São Paulo day (03:00Z to 03:00Z): its one date, and the lookback's.
        pytest.param(utc(5, 3), utc(6, 3), DAY, date(4), date(5), id="sao-paulo-day"),
        pytest.param(utc(5, 3), utc(6, 3), datetime.timedelta(0), date(5), date(5), id="sao-paulo-day-alone"),
        # The end belongs to the next run: an interval ending at local midnight stops the day before.
        pytest.param(utc(5, 3), utc(5, 4), DAY, date(4), date(5), id="one-hour"),
        pytest.param(utc(5, 3), utc(6, 3), datetime.timedelta(hours=6), date(4), date(5), id="hours-back"),
    ],
)
def test_a_data_interval_asks_for_the_banks_local_dates(start, end, lookback, first, last):
    window = BookingWindow(lookback=lookback)
    assert window.dates(start, end) == BookingDates(first, last)
    assert window.params(BookingDates(first, last)) == {
        "fromBookingDate": first.isoformat(),
        "toBookingDate": last.isoformat(),
    }


def test_other_names_and_zones():
    window = BookingWindow(
        from_param="from", to_param="to", timezone="Asia/Tokyo", lookback=datetime.timedelta(0)
    )
    # 2026-12-05T15:00Z is midnight of the 6th in Tokyo.
    assert window.params(window.dates(utc(5, 15), utc(6, 15))) == {"from": "2026-12-06", "to": "2026-12-06"}


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(utc(5), utc(5), id="empty-interval"),
        pytest.param(None, None, id="no-interval"),
        pytest.param(utc(6), utc(5), id="backwards"),
        pytest.param(utc(5).replace(tzinfo=None), utc(6).replace(tzinfo=None), id="naive"),
    ],
)
def test_a_run_without_an_interval_is_refused_naming_the_schedule_to_give(start, end):
    with pytest.raises(ConfigurationError) as caught:
        BookingWindow().dates(start, end)
    assert caught.value.field == "window"
    assert "CronTriggerTimetable" in caught.value.hint


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        pytest.param({"timezone": "Brazil/Nowhere"}, "timezone", id="unknown-zone"),
        pytest.param({"lookback": -DAY}, "lookback", id="negative-lookback"),
        pytest.param({"lookback": 1}, "lookback", id="lookback-not-timedelta"),
        pytest.param({"from_param": ""}, "from_param", id="empty-name"),
        pytest.param({"to_param": "fromBookingDate"}, "to_param", id="same-names"),
    ],
)
def test_a_malformed_window_is_refused_naming_its_field(arguments, field):
    with pytest.raises(ConfigurationError) as caught:
        BookingWindow(**arguments)
    assert caught.value.field == field


def records(*ids):
    return [{"transactionId": key, "amount": 1} for key in ids]


def keys_of(state, interval, days, *, lookback=DAY):
    return written_keys(
        state,
        interval=interval,
        dates=BookingDates(date(days[0]), date(days[1])),
        key_path="transactionId",
        lookback=lookback,
        where="the test",
    )


def run(state, day, ids):
    """A daily São Paulo run of business date ``day`` (asking ``day - 1`` to ``day``) seeing ``ids``."""
    keys = keys_of(state, interval_id(utc(day, 3), utc(day + 1, 3)), (day - 1, day))
    written = [record["transactionId"] for record in keys.fresh(records(*ids))]
    return written, keys.state()


def test_each_key_once_in_a_run_and_never_again_in_a_later_one():
    written, state = run(None, 4, ["a", "b", "a"])
    assert written == ["a", "b"]
    written, state = run(state, 5, ["b", "c", "late-of-4", "c"])
    assert written == ["c", "late-of-4"]


def test_a_rerun_of_an_interval_rewrites_its_own_keys_and_leaves_out_the_others():
    _, state = run(None, 4, ["a", "b"])
    second, state = run(state, 5, ["b", "c", "d"])
    _, state = run(state, 6, ["d", "e"])
    again, rerun_state = run(state, 5, ["b", "c", "d"])
    assert again == second == ["c", "d"]
    assert rerun_state == state  # the same keys remembered: a rerun changes nothing but its own entry


def test_only_the_runs_inside_the_lookback_of_the_newest_are_kept():
    state = None
    for day in range(4, 10):
        _, state = run(state, day, [f"tx-{day}"])
    # The newest run asks from the 8th: runs whose window ends on the 7th or later are kept.
    assert sorted(entry["to"] for entry in state["runs"].values()) == [
        "2026-12-07",
        "2026-12-08",
        "2026-12-09",
    ]
    assert sorted(key for entry in state["runs"].values() for key in entry["keys"]) == [
        "tx-7",
        "tx-8",
        "tx-9",
    ]


def test_a_rerun_of_an_old_interval_keeps_the_newer_runs():
    state = None
    for day in range(4, 8):
        _, state = run(state, day, [f"tx-{day}"])
    _, rerun_state = run(state, 6, ["tx-6"])
    assert rerun_state == state


def test_keys_that_are_not_text_are_remembered_as_their_json_text():
    keys = keys_of(None, "i", (4, 5))
    sent = [{"transactionId": 42}, {"transactionId": "42"}, {"transactionId": BankDecimal("1.50")}]
    # The same id whether the bank sends it as a number or as text; a decimal keeps its digits.
    assert len(list(keys.fresh(sent))) == 2
    assert keys.state()["runs"]["i"]["keys"] == ["42", "1.50"]


def test_a_dotted_key_path():
    keys = WrittenKeys("i", BookingDates(date(4), date(5)), "ids.transaction", {}, DAY)
    assert len(list(keys.fresh([{"ids": {"transaction": "x"}}, {"ids": {"transaction": "x"}}]))) == 1


def test_a_record_without_its_key_fails_naming_the_key_and_the_record():
    keys = keys_of(None, "i", (4, 5))
    with pytest.raises(MissingRecordKeyError) as caught:
        list(keys.fresh([{"transactionId": "a"}, {"id": "b"}]))
    assert (caught.value.key_path, caught.value.record_number) == ("transactionId", 2)
    assert "'transactionId'" in str(caught.value)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param({"version": 2, "runs": {}}, id="other-version"),
        pytest.param(["a"], id="a-list"),
        pytest.param(
            {"version": 1, "runs": {"i": {"from": "x", "to": "2026-12-05", "keys": []}}}, id="bad-date"
        ),
        pytest.param({"version": 1, "runs": {"i": {"from": "2026-12-04", "to": "2026-12-05"}}}, id="no-keys"),
        pytest.param(
            {"version": 1, "runs": {"i": {"from": "2026-12-04", "to": "2026-12-05", "keys": [1]}}}, id="int"
        ),
    ],
)
def test_a_remembered_value_in_another_layout_is_refused_not_misread(stored):
    with pytest.raises(ConfigurationError) as caught:
        keys_of(stored, "i", (4, 5))
    assert caught.value.field == "dedupe_key"
    assert "the test" in str(caught.value)

"""The sandbox's booking-date illustration: transactions of the dates asked for, the last of each date
posted the next morning, and the links that carry the window from page to page.
"""

from __future__ import annotations

import datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from bankapi_sandbox import data

WINDOW = (datetime.date(2026, 12, 4), datetime.date(2026, 12, 5))


def ids(window, page_size="100"):
    page = data.numbered_page(
        "123", "1", page_size, "https://bank/open-banking/accounts/123/transactions", window
    )
    return [record["transactionId"] for record in page["data"]]


def test_a_dates_late_posting_shows_only_when_a_later_date_is_asked_for_too():
    day_alone = ids((WINDOW[0], WINDOW[0]))
    assert day_alone == ["123-20261204-0", "123-20261204-1"]  # asked as of its own end: not posted yet
    assert ids(WINDOW) == [*day_alone, "123-20261204-2", "123-20261205-0", "123-20261205-1"]
    assert ids(WINDOW) == ids(WINDOW)  # no clock: the same window, the same answer


def test_the_records_are_open_finance_transactions_of_their_booking_date():
    page = data.numbered_page("123", "1", "100", "https://bank/x", WINDOW)
    record = page["data"][0]
    assert record["bookingDate"] == "2026-12-04"
    assert record["transactionDateTime"].startswith("2026-12-04T")
    assert record["transactionAmount"]["currency"] == "BRL"
    assert str(record["transactionAmount"]["amount"]).count(".") == 1
    assert len(str(record["transactionAmount"]["amount"]).split(".")[1]) == 4
    assert page["meta"]["totalRecords"] == 5


def test_every_link_carries_the_window():
    page = data.numbered_page("123", "2", "2", "https://bank/x", WINDOW)
    for name in ("self", "first", "last", "prev", "next"):
        query = parse_qs(urlsplit(page["links"][name]).query)
        assert query["fromBookingDate"] == ["2026-12-04"]
        assert query["toBookingDate"] == ["2026-12-05"]
    assert page["meta"]["totalPages"] == 3


def test_without_booking_dates_the_resource_is_as_before():
    assert data.booking_dates(None, None) is None
    assert len(data.numbered_page("123", "1", "100", "https://bank/x")["data"]) == data.transaction_count(
        "123"
    )


@pytest.mark.parametrize(
    ("first", "last"),
    [
        pytest.param("2026-12-04", None, id="from-alone"),
        pytest.param(None, "2026-12-04", id="to-alone"),
        pytest.param("04/12/2026", "2026-12-05", id="not-iso"),
        pytest.param("2026-12-05", "2026-12-04", id="backwards"),
        pytest.param("2000-01-01", "2026-12-04", id="too-long"),
    ],
)
def test_a_window_the_sandbox_cannot_answer_is_a_bad_request(first, last):
    with pytest.raises(data.BadRequest):
        data.booking_dates(first, last)


def test_the_window_over_https(client):
    token = client.access_token()
    answer = client.get(
        "/open-banking/accounts/123/transactions",
        token,
        fromBookingDate="2026-12-04",
        toBookingDate="2026-12-05",
        **{"page-size": 2},
    )
    assert answer.status_code == 200
    assert [record["transactionId"] for record in answer.json()["data"]] == [
        "123-20261204-0",
        "123-20261204-1",
    ]
    assert "toBookingDate=2026-12-05" in answer.json()["links"]["next"]
    refused = client.get("/open-banking/accounts/123/transactions", token, fromBookingDate="2026-12-04")
    assert refused.status_code == 400
    assert "toBookingDate" in refused.json()["error_description"]

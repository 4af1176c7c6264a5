"""The faulty bank: more fault kinds, a seeded mix of faults, the request log and the bank's clock."""

from __future__ import annotations

import email.utils
import random
import time

import pytest
import requests
from bank_day import BankDay

from bankapi_sandbox.chaos import EXTRA_FAULT_KINDS, FaultMix, RequestRecord
from bankapi_sandbox.control import ControlError

BALANCE = "/accounts/123/balance"
MIX_KINDS = ("429", "429-date", "502", "503", "504", "drop", "hang", "404", "not-json", "revoke")


@pytest.fixture
def sandbox(bankapi_sandbox):
    return bankapi_sandbox


@pytest.mark.parametrize(
    ("kind", "status", "phrase"),
    [
        pytest.param("502", 502, "Bad Gateway", id="502"),
        pytest.param("504", 504, "Gateway Timeout", id="504"),
        pytest.param("404", 404, "Not Found", id="404"),
    ],
)
def test_canned_error_answers_carry_the_phrase(client, sandbox, kind, status, phrase):
    token = client.access_token()
    sandbox.inject_fault(BALANCE, kind)
    response = client.balance(token)
    assert (response.status_code, response.json()["message"]) == (status, phrase)
    assert client.balance(token).status_code == 200
    assert sandbox.counters()["faults_served"] == {kind: 1}


def test_429_with_retry_after_as_an_http_date_in_the_banks_clock(client, sandbox):
    token = client.access_token()
    BankDay(sandbox).set_clock_offset(-300)  # the bank is five minutes behind: so are its dates
    sandbox.inject_fault(BALANCE, "429-date", retry_after=2)
    response = client.balance(token)
    assert response.status_code == 429
    date = email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()
    retry_at = email.utils.parsedate_to_datetime(response.headers["Retry-After"]).timestamp()
    assert retry_at - date == 2
    assert abs(date - (time.time() - 300)) < 30


def test_not_json_is_a_200_html_page(client, sandbox):
    token = client.access_token()
    sandbox.inject_fault(BALANCE, "not-json")
    response = client.balance(token)
    assert (response.status_code, response.headers["Content-Type"]) == (200, "text/html")
    with pytest.raises(ValueError):  # noqa: PT011 - requests' JSONDecodeError is a ValueError
        response.json()


def test_revoke_revokes_the_token_before_serving_the_request(client, sandbox):
    token = client.access_token()
    sandbox.inject_fault(BALANCE, "revoke")
    response = client.balance(token)
    assert response.status_code == 401
    assert response.json()["error_description"] == "the access token was revoked"
    assert client.balance(client.access_token()).status_code == 200


def test_the_bank_clock_decides_token_expiry(client, sandbox):
    sandbox.set_token_lifetime(60)
    token = client.access_token()
    BankDay(sandbox).set_clock_offset(61)
    response = client.balance(token)
    assert (response.status_code, response.json()["error_description"]) == (401, "the access token expired")
    BankDay(sandbox).set_clock_offset(0)
    assert client.balance(token).status_code == 200


def test_the_same_seed_faults_the_same_requests_in_any_order():
    mix = FaultMix(seed=7, rate=0.05, kinds=MIX_KINDS)
    requests = [(f"/accounts/{n}/balance", occurrence) for n in range(200) for occurrence in range(5)]
    shuffled = random.Random(1).sample(requests, len(requests))
    first = {request: mix.pick(*request) for request in requests}
    assert {request: mix.pick(*request) for request in shuffled} == first
    other = FaultMix(seed=8, rate=0.05, kinds=MIX_KINDS)
    assert {request: other.pick(*request) for request in requests} != first
    faulted = [kind for kind in first.values() if kind is not None]
    assert 20 <= len(faulted) <= 80  # 5% of 1000, give or take
    assert set(faulted) <= set(MIX_KINDS)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"rate": 1.5}, id="rate-above-one"),
        pytest.param({"rate": -0.1}, id="negative-rate"),
        pytest.param({"kinds": ()}, id="no-kind"),
        pytest.param({"seed": "x"}, id="seed-not-int"),
    ],
)
def test_a_bad_mix_is_refused(bad):
    with pytest.raises(ValueError):  # noqa: PT011 - the messages differ per field
        FaultMix(**{"seed": 1, "rate": 0.1, "kinds": ("502",), **bad})


def test_the_mix_faults_only_its_paths_and_the_log_shows_each_request(client, sandbox):
    BankDay(sandbox).set_fault_mix(seed=3, rate=1.0, kinds=["502"], paths="/accounts/*/balance")
    token = client.access_token()  # the token path is outside the mix
    assert client.balance(token, "9").status_code == 502
    assert client.get("/accounts", token).status_code == 200
    BankDay(sandbox).clear_fault_mix()
    assert client.balance(token, "9").status_code == 200
    log = [RequestRecord(**entry) for entry in BankDay(sandbox).take_requests()]
    assert log == [
        RequestRecord("POST", "/auth/token-v2", None, 200, None),
        RequestRecord("GET", "/accounts/9/balance", "9", 502, "502"),
        RequestRecord("GET", "/accounts", None, 200, None),
        RequestRecord("GET", "/accounts/9/balance", "9", 200, None),
    ]
    assert BankDay(sandbox).take_requests() == []  # taken: the log starts again
    assert sandbox.counters()["faults_served"] == {"502": 1}


def test_a_dropped_request_is_logged_without_a_status(client, sandbox):
    token = client.access_token()
    BankDay(sandbox).take_requests()
    sandbox.inject_fault(BALANCE, "drop")
    with pytest.raises(Exception):  # noqa: B017, PT011 - requests' ConnectionError, whatever its subclass
        client.balance(token)
    assert BankDay(sandbox).take_requests() == [
        {
            "method": "GET",
            "path": BALANCE,
            "account": "123",
            "status": None,
            "fault": "drop",
            "interaction_id": None,
        }
    ]


def test_the_mix_through_the_control_endpoint_refuses_unknown_kinds(sandbox):
    with pytest.raises(ControlError, match="fault kind must be one of"):
        BankDay(sandbox).set_fault_mix(seed=1, rate=0.1, kinds=["418"])
    with pytest.raises(ControlError, match="rate must be"):
        BankDay(sandbox).set_fault_mix(seed=1, rate=2, kinds=["502"])


def test_every_extra_kind_can_be_injected(sandbox):
    for kind in EXTRA_FAULT_KINDS:
        sandbox.inject_fault(f"/accounts/{kind}/balance", kind)
    assert {fault["kind"] for fault in sandbox.pending_faults().values()} == set(EXTRA_FAULT_KINDS)


def test_reset_stops_the_mix_and_the_clock_offset(client, sandbox):
    BankDay(sandbox).set_fault_mix(seed=1, rate=1.0, kinds=["404"])
    BankDay(sandbox).set_clock_offset(600)
    sandbox.reset()
    token = client.access_token()
    assert client.balance(token).status_code == 200
    date = email.utils.parsedate_to_datetime(client.balance(token).headers["Date"]).timestamp()
    assert abs(date - time.time()) < 30


def test_a_hanging_request_is_in_the_log_while_it_hangs(client, sandbox):
    token = client.access_token()
    BankDay(sandbox).take_requests()
    sandbox.inject_fault(BALANCE, "hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.session.get(
            f"{sandbox.base_url}{BALANCE}", headers={"Authorization": f"Bearer {token}"}, timeout=0.5
        )
    assert BankDay(sandbox).take_requests() == [
        {
            "method": "GET",
            "path": BALANCE,
            "account": "123",
            "status": None,
            "fault": "hang",
            "interaction_id": None,
        }
    ]

"""An account id is one path segment: refused before any request when a reading of it would be a path."""

from __future__ import annotations

import pytest
from bank_day import BankDay
from test_api import settings_for

from airflow_provider_bankapi.client.api import BankingApiClient, balance_path
from airflow_provider_bankapi.client.endpoints import checked_account_id
from airflow_provider_bankapi.client.tokens.cache import MemoryTokenStore
from airflow_provider_bankapi.errors import ConfigurationError, printable
from bankapi_sandbox import data

CRAFTED = [
    pytest.param("123/../456", "path separator", id="dot-dot-between-slashes"),
    pytest.param("123/456", "path separator", id="slash"),
    pytest.param("123\\..\\456", "path separator", id="backslashes"),
    pytest.param("123%2F..%2F456", "path separator", id="encoded-slash"),
    pytest.param("123%5c..%5c456", "path separator", id="encoded-backslash"),
    pytest.param("123%252F..%252F456", "path separator", id="double-encoded-slash"),
    pytest.param("123%25252f456", "path separator", id="triple-encoded-slash"),
    pytest.param("..", "dot segment", id="dot-dot"),
    pytest.param(".", "dot segment", id="dot"),
    pytest.param("%2e%2E", "dot segment", id="encoded-dot-dot"),
    pytest.param("%252e.", "dot segment", id="double-encoded-dot-dot"),
    pytest.param("123\x00", "control characters", id="nul"),
    pytest.param("123%00", "control characters", id="encoded-nul"),
    pytest.param("123\nINFO - Marking task as SUCCESS", "control characters", id="newline-forged-log-line"),
    pytest.param("123\x1b[2J", "control characters", id="escape-sequence"),
    pytest.param("123\u202e", "control characters", id="right-to-left-override"),
    pytest.param("", "empty", id="empty"),
    pytest.param("   ", "empty", id="blank"),
]


@pytest.mark.parametrize(("account_id", "problem"), CRAFTED)
def test_an_id_that_is_not_one_segment_is_refused_naming_it_without_its_control_characters(
    account_id, problem
):
    with pytest.raises(ConfigurationError) as refused:
        balance_path(account_id)

    error = refused.value
    assert error.field == "account_id"
    assert problem in error.message
    assert error.message.isprintable()  # no newline or ESC reaches a log line through the message
    assert f"The account id '{printable(account_id)}' " in error.message
    assert "GET /accounts" in error.hint


@pytest.mark.parametrize(
    ("account_id", "path"),
    [
        pytest.param("123", "/accounts/123/balance", id="digits"),
        pytest.param(456, "/accounts/456/balance", id="a-number"),
        pytest.param("BR-00.12_3~", "/accounts/BR-00.12_3~/balance", id="unreserved-punctuation"),
        pytest.param("...", "/accounts/.../balance", id="three-dots-are-a-name"),
        pytest.param("a b?c#d;e%", "/accounts/a%20b%3Fc%23d%3Be%25/balance", id="encoded-once"),
        pytest.param("conta-é", "/accounts/conta-%C3%A9/balance", id="non-ascii"),
    ],
)
def test_a_plain_id_is_one_segment_encoded_once(account_id, path):
    assert balance_path(account_id) == path
    assert checked_account_id(account_id) == str(account_id)


def test_the_field_named_is_the_one_the_caller_gave():
    with pytest.raises(ConfigurationError) as refused:
        checked_account_id("1/2", field="account_ids")
    assert refused.value.field == "account_ids"


# -- against the sandbox bank: what reaches the bank ------------------------------------------------------


@pytest.fixture
def client(bankapi_sandbox):
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=[MemoryTokenStore()]) as made:
        BankDay(bankapi_sandbox).take_requests()  # the log starts with this test
        yield made


def test_a_crafted_id_never_reaches_another_account(bankapi_sandbox, client):
    # One sandbox for all the crafted ids: each is refused before any request, none disturbs the next.
    for case in CRAFTED:
        account_id, problem = case.values
        with pytest.raises(ConfigurationError, match=problem):
            client.get_balance(account_id)

        assert BankDay(bankapi_sandbox).take_requests() == [], case.id  # no token call, let alone account 456


def test_the_bank_log_shows_what_a_plain_id_reaches(bankapi_sandbox, client):
    # The control of the test above: the bank's request log does record a balance call, by account.
    assert client.get_balance("456") == data.balance("456")

    requests = BankDay(bankapi_sandbox).take_requests()
    balance_calls = [entry for entry in requests if entry["path"].endswith("/balance")]
    assert [entry["account"] for entry in balance_calls] == ["456"]


def test_a_batch_with_one_crafted_id_asks_for_nothing(bankapi_sandbox, client):
    with pytest.raises(ConfigurationError, match="'123/../456'"):
        client.get_balances(["123", "123/../456", "789"])

    assert BankDay(bankapi_sandbox).take_requests() == []
    assert bankapi_sandbox.counters()["tokens_issued"] == 0

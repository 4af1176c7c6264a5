"""The balance batch (``client/batch.py``) against the sandbox bank over real mutual TLS."""

from __future__ import annotations

import time

import pytest
from test_api import settings_for

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.tokens.cache import MemoryTokenStore
from airflow_provider_bankapi.errors import InvalidCredentialsError


@pytest.fixture
def client(bankapi_sandbox):
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=[MemoryTokenStore()]) as made:
        yield made


def test_balances_reports_every_success_and_failure_by_account(bankapi_sandbox, client):
    bankapi_sandbox.inject_fault("/accounts/bad/balance", "503", count=50)
    result = client.get_balances(["1", "2", "bad", "3", "2"], max_workers=3)
    assert sorted(result.succeeded) == ["1", "2", "3"]
    assert list(result.failed) == ["bad"]
    assert type(result.failed["bad"]).__name__ == "ServerError"
    assert "3 succeeded, 1 failed" in result.summary()
    assert bankapi_sandbox.counters()["tokens_issued"] == 1


@pytest.mark.parametrize("max_workers", [1, 3])
def test_balances_raise_the_credentials_own_error_once_when_it_fails_for_every_account(
    bankapi_sandbox, client, max_workers
):
    client.get_token()  # cached: the batch starts on it
    bankapi_sandbox.core.deactivate(bankapi_sandbox.client_id)
    bankapi_sandbox.revoke_tokens()

    with pytest.raises(InvalidCredentialsError) as caught:
        client.get_balances([str(number) for number in range(8)], max_workers=max_workers)

    assert caught.value.status_code == 401
    # The batch stopped at the first refusal instead of asking for a token once per account.
    assert bankapi_sandbox.counters()["api_requests"] <= max_workers


def test_streamed_balances_come_in_the_order_of_the_ids_whatever_answers_first(bankapi_sandbox, client):
    bankapi_sandbox.inject_fault("/accounts/slow/balance", "503", count=2)  # retried: answers last
    ids = ["slow", "9", "3", "bad", "7", "3", "1", "5", "2", "8"]
    bankapi_sandbox.inject_fault("/accounts/bad/balance", "503", count=50)

    outcomes = list(client.iter_balances(ids, max_workers=4))

    assert [account for account, _ in outcomes] == list(dict.fromkeys(ids))
    balances = dict(outcomes)
    assert type(balances.pop("bad")).__name__ == "ServerError"
    assert all(balance["account_id"] == account for account, balance in balances.items())


def test_streamed_balances_ask_for_a_bounded_window_ahead_of_the_reader(bankapi_sandbox, client):
    stream = client.iter_balances([str(number) for number in range(200)], max_workers=2)
    assert next(stream)[0] == "0"
    # The reader pauses: calls ahead of it end, and no new call starts until it reads on.
    settled, deadline = -1, time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        asked = bankapi_sandbox.counters()["api_requests"]
        if asked == settled:
            break
        settled = asked
    assert settled <= 1 + 4 * 2  # the one read, and the window asked for ahead
    assert sum(1 for _ in stream) == 199


def test_a_credential_refused_mid_stream_stops_the_calls_and_fails_the_accounts_not_asked_for(
    bankapi_sandbox, client
):
    ids = [str(number) for number in range(100)]
    outcomes = _revoked_after_the_first(bankapi_sandbox, client, ids, workers=2)  # no raise: one succeeded

    assert [account for account, _ in outcomes] == ids
    assert not isinstance(outcomes[0][1], Exception)
    refused = next(n for n, (_, outcome) in enumerate(outcomes) if isinstance(outcome, Exception))
    error = outcomes[refused][1]
    assert isinstance(error, InvalidCredentialsError)
    # Beyond the window asked for ahead, every account fails with that one error, never asked for.
    assert all(outcome is error for _, outcome in outcomes[refused + 1 + 4 * 2 :])
    assert bankapi_sandbox.counters()["api_requests"] <= refused + 1 + 4 * 2


@pytest.mark.bankapi_sandbox(latency=0.2)  # sixteen calls in flight when the credential is revoked
def test_a_credential_revoked_mid_batch_costs_one_refused_token_request_whatever_max_workers(
    bankapi_sandbox, client
):
    outcomes = _revoked_after_the_first(bankapi_sandbox, client, [str(n) for n in range(64)], workers=16)

    assert any(isinstance(outcome, InvalidCredentialsError) for _, outcome in outcomes)
    # Every worker thread got its 401 and asked for a renewal: they shared the one refused answer.
    assert sum(bankapi_sandbox.counters()["token_refused"].values()) == 1


def _revoked_after_the_first(sandbox, client, ids, *, workers):
    """Every outcome of a stream whose credential is deactivated (its tokens revoked) after the first one."""
    stream = client.iter_balances(ids, max_workers=workers)
    first = next(stream)
    sandbox.core.deactivate(sandbox.client_id)
    sandbox.revoke_tokens()
    return [first, *stream]

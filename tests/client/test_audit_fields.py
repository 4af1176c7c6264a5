"""Every request carries a fresh interaction id and the provider's User-Agent; errors keep the id."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from bank_day import BankDay
from test_api import FAST, settings_for

from airflow_provider_bankapi import __version__
from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.tokens.cache import MemoryTokenStore
from airflow_provider_bankapi.errors import ApiError, InvalidCredentialsError


@pytest.fixture
def client(bankapi_sandbox):
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=[MemoryTokenStore()]) as made:
        yield made


def test_every_request_the_token_one_included_carries_its_own_uuid(client, bankapi_sandbox):
    BankDay(bankapi_sandbox).take_requests()

    client.get_json("/accounts/123/balance")
    list(client.paginate("/accounts/123/transactions", params={"limit": 10}))
    session = client.session()
    session.get(client.settings.url("/accounts/123/balance"))  # a raw Session too

    log = BankDay(bankapi_sandbox).take_requests()
    assert log[0]["path"].endswith("/auth/token-v2")
    ids = [record["interaction_id"] for record in log]
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert len(set(ids)) == len(ids) > 3


def test_requests_say_who_sends_them(client):
    response = client.request("GET", "/accounts/123/balance")

    assert response.request.headers["User-Agent"] == f"airflow-provider-bankapi/{__version__}"
    # The bank echoes the id it received: the same one.
    assert response.headers["x-fapi-interaction-id"] == response.request.headers["x-fapi-interaction-id"]


def test_a_refusal_carries_the_id_of_the_request_the_bank_refused(client, bankapi_sandbox):
    BankDay(bankapi_sandbox).take_requests()

    with pytest.raises(ApiError) as caught:
        client.get_json("/accounts/123/nothing-here")

    (refused,) = [r for r in BankDay(bankapi_sandbox).take_requests() if r["status"] == 404]
    assert caught.value.interaction_id == refused["interaction_id"]
    assert f"(interaction id {refused['interaction_id']})" in str(caught.value)


def test_a_refused_token_request_carries_its_id(bankapi_sandbox):
    settings = settings_for(bankapi_sandbox, secret="not-the-secret")
    BankDay(bankapi_sandbox).take_requests()

    with (
        BankingApiClient(settings, token_stores=[]) as client,
        pytest.raises(InvalidCredentialsError) as caught,
    ):
        client.get_token()

    (refused,) = BankDay(bankapi_sandbox).take_requests()
    assert caught.value.interaction_id == refused["interaction_id"]


def test_an_interaction_id_header_set_to_empty_sends_none(bankapi_sandbox):
    settings = settings_for(bankapi_sandbox, transport=dataclasses.replace(FAST, interaction_id_header=""))
    BankDay(bankapi_sandbox).take_requests()

    with BankingApiClient(settings, token_stores=[]) as client, pytest.raises(ApiError) as caught:
        client.get_json("/accounts/123/nothing-here")

    assert [r["interaction_id"] for r in BankDay(bankapi_sandbox).take_requests()] == [None, None]
    assert caught.value.interaction_id is None
    assert "interaction id" not in str(caught.value)

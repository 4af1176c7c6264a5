"""Through the hook, its raw Session, the connection test and the trigger: credentials reach the Base
URL's origin and path prefix only (paths are normalised and checked, redirects are errors)."""

from __future__ import annotations

import asyncio

import pytest
from loopback_https import BASE_PATH, TOKEN, Answer, LoopbackHttps, redirect

from airflow_provider_bankapi.errors import ConfigurationError, RedirectRefusedError
from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from airflow_provider_bankapi.triggers.bankapi import BankingApiTrigger

CONN_ID = "bankapi_trust_test"


@pytest.fixture
def connect(bankapi_sandbox, airflow_connection):
    """``connect(host=None)``: the sandbox's connection (its Base URL unless ``host``) and its hook."""

    def define(host=None):
        connection = dict(bankapi_sandbox.connection)
        if host:
            connection["host"] = host
            connection.pop("port", None)  # the sandbox's Port would disagree with another server's URL
        connection["extra"] = {**connection["extra"], "cache_scope": "off", "max_retries": 0}
        airflow_connection(CONN_ID, connection)
        return BankingApiHook(bankapi_conn_id=CONN_ID)

    return define


@pytest.fixture
def elsewhere(bankapi_sandbox, tmp_path):
    with LoopbackHttps(bankapi_sandbox, tmp_path) as server:
        yield server


def redirecting_gateway(sandbox, tmp_path, elsewhere):
    """A gateway at the Base URL that issues tokens and redirects every other call to ``elsewhere``."""

    def answer(seen):
        if (seen.method, seen.path) == ("POST", f"{BASE_PATH}/auth/token-v2"):
            return TOKEN
        return redirect(302, elsewhere.url(seen.path + "?access_token=leak"))

    return LoopbackHttps(sandbox, tmp_path, answer)


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param("/accounts/../../../outside/x", id="above-the-base"),
        pytest.param("/accounts/%2e%2e/%2e%2e/%2E%2E/outside/x", id="encoded-dots"),
        pytest.param("/auth/./token-v2", id="token-endpoint-dot"),
        pytest.param("/accounts/../auth/token-v2", id="token-endpoint-dot-dot"),
        pytest.param("/auth/token-v2#", id="token-endpoint-fragment"),
        pytest.param("/auth/token-v2/.", id="token-endpoint-trailing-dot"),
        pytest.param("/accounts?limit=5", id="query-in-the-endpoint"),
    ],
)
def test_get_json_refuses_a_path_off_the_base_before_any_request(bankapi_sandbox, connect, endpoint):
    hook = connect()
    with pytest.raises(ConfigurationError) as refused:
        hook.get_json(endpoint)

    assert refused.value.field == "endpoint"
    assert bankapi_sandbox.counters()["tls_connections"] == 0  # not even the token request


def test_get_json_still_reaches_a_path_that_resolves_inside(bankapi_sandbox, connect):
    hook = connect()
    assert hook.get_json("/accounts/9/../123/./balance") == hook.get_balance("123")


@pytest.mark.parametrize(
    "follow", [pytest.param({}, id="default"), pytest.param({"allow_redirects": True}, id="asked")]
)
def test_a_get_conn_session_never_follows_a_redirect(bankapi_sandbox, connect, tmp_path, elsewhere, follow):
    with redirecting_gateway(bankapi_sandbox, tmp_path, elsewhere) as bank:
        hook = connect(bank.base_url)
        session = hook.get_conn()
        with pytest.raises(RedirectRefusedError) as refused:
            session.get(hook.client.settings.url("/accounts/1/balance"), **follow)

    assert refused.value.status_code == 302
    assert refused.value.location_host == f"127.0.0.1:{elsewhere.port}"
    assert "leak" not in str(refused.value)
    assert elsewhere.connections == 0


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/accounts/%2e%2e/%2e%2e/outside", id="encoded-dot-dot"),
        pytest.param("/accounts/..%2fauth%2ftoken-v2", id="encoded-slash-to-the-token"),
        pytest.param("/auth/token-v2", id="token-endpoint"),
    ],
)
def test_a_get_conn_session_applies_the_same_path_rule(bankapi_sandbox, connect, path):
    hook = connect()
    session = hook.get_conn()
    with pytest.raises(ConfigurationError) as refused:
        session.get(bankapi_sandbox.base_url + path)

    assert refused.value.field == "endpoint"
    assert bankapi_sandbox.counters()["api_requests"] == 0


def test_the_connection_test_reports_a_redirected_token_request(
    bankapi_sandbox, connect, tmp_path, elsewhere
):
    def answer(seen):
        return (
            redirect(307, elsewhere.url("/token?client_secret=leak"))
            if seen.method == "POST"
            else Answer(404)
        )

    with LoopbackHttps(bankapi_sandbox, tmp_path, answer) as bank:
        ok, message = connect(bank.base_url).test_connection()

    assert not ok
    assert "307" in message
    assert f"127.0.0.1:{elsewhere.port}" in message
    assert "leak" not in message
    assert elsewhere.connections == 0


def test_the_trigger_ends_the_wait_on_a_redirect(bankapi_sandbox, connect, tmp_path, elsewhere):
    with redirecting_gateway(bankapi_sandbox, tmp_path, elsewhere) as bank:
        connect(bank.base_url)
        trigger = BankingApiTrigger(
            bankapi_conn_id=CONN_ID,
            endpoint="/accounts/1/balance",
            condition={"field": "available", "comparison": ">=", "value": "1"},
        )

        async def first_event():
            return await anext(trigger.run(), None)

        event = asyncio.run(first_event())

    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == "RedirectRefusedError"
    assert event.payload["status_code"] == 302
    assert elsewhere.connections == 0


def test_a_base_url_with_userinfo_is_refused_naming_the_field_and_not_echoing_the_password(
    bankapi_sandbox, connect
):
    base = bankapi_sandbox.base_url.replace("https://", "https://user:pw-hidden-42@")
    hook = connect(base)
    with pytest.raises(ConfigurationError) as refused:
        hook.get_balance("1")
    ok, message = hook.test_connection()

    assert refused.value.field == "host"
    assert "pw-hidden-42" not in str(refused.value)
    assert not ok
    assert "pw-hidden-42" not in message
    assert bankapi_sandbox.counters()["tls_connections"] == 0

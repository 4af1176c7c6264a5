"""Credentials reach the Base URL's origin and path prefix only: redirects are errors, never followed.

Real HTTPS servers on loopback, signed by the sandbox's CA (so the client trusts both): a gateway that
answers with redirects, and the other origin it points to, which records whatever reaches it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from loopback_https import BASE_PATH, TOKEN, Answer, LoopbackHttps, redirect

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.settings import ClientSettings, TransportSettings
from airflow_provider_bankapi.errors import (
    HINT_INVALID_CLIENT_CERTIFICATE,
    HINT_INVALID_CREDENTIALS,
    HINT_TOKEN_REFUSED,
    ApiError,
    ConfigurationError,
    RedirectRefusedError,
)
from bankapi_sandbox import running

SECRET = "s3cret-that-must-stay-home"
LEAK = "/steal?client_secret=" + SECRET


@pytest.fixture(scope="module")
def sandbox():
    with running() as handle:
        yield handle


@pytest.fixture
def elsewhere(sandbox, tmp_path):
    """Another origin (same loopback address, another port), trusted by the client's CA like the bank."""
    with LoopbackHttps(sandbox, tmp_path) as server:
        yield server


def gateway(sandbox, tmp_path, answers):
    """The Base URL's server: ``answers`` maps (method, path under the Base URL) to an Answer."""
    return LoopbackHttps(
        sandbox, tmp_path, lambda seen: answers.get((seen.method, seen.path[len(BASE_PATH) :]), Answer(404))
    )


def make_client(sandbox, base_url):
    settings = ClientSettings(
        base_url=base_url,
        client_id="client-1",
        client_secret=SECRET,
        identity=IdentityMaterial(
            client_cert=Path(sandbox.client_cert),
            client_private_key=Path(sandbox.client_key),
            ca_cert=Path(sandbox.ca_cert),
        ),
        transport=TransportSettings(connect_timeout=5, read_timeout=5, max_retries=0),
    )
    return BankingApiClient(settings, token_stores=[])


def assert_refused(refused, status, host):
    error = refused.value
    assert error.status_code == status
    assert error.location_host == host
    assert f"{status}" in error.message
    assert host in error.message
    assert "no redirects" in error.hint
    assert "steal" not in str(error)
    assert SECRET not in str(error)


def test_a_307_on_the_token_request_is_an_error_and_the_secret_goes_nowhere_else(
    sandbox, tmp_path, elsewhere
):
    answers = {("POST", "/auth/token-v2"): redirect(307, elsewhere.url(LEAK))}
    with gateway(sandbox, tmp_path, answers) as bank, make_client(sandbox, bank.base_url) as client:
        with pytest.raises(RedirectRefusedError) as refused:
            client.get_token()

    assert_refused(refused, 307, f"127.0.0.1:{elsewhere.port}")
    assert [seen.method for seen in bank.seen] == ["POST"]
    assert elsewhere.connections == 0  # no TLS handshake (no client certificate), no body (no secret)


def test_a_302_on_a_balance_is_an_error_and_neither_token_nor_certificate_goes_elsewhere(
    sandbox, tmp_path, elsewhere
):
    answers = {
        ("POST", "/auth/token-v2"): TOKEN,
        ("GET", "/accounts/123/balance"): redirect(
            302, elsewhere.url("/accounts/123/balance?access_token=x")
        ),
    }
    with gateway(sandbox, tmp_path, answers) as bank, make_client(sandbox, bank.base_url) as client:
        with pytest.raises(RedirectRefusedError) as refused:
            client.get_balance("123")

    assert_refused(refused, 302, f"127.0.0.1:{elsewhere.port}")
    assert elsewhere.connections == 0
    assert [seen.method for seen in bank.seen] == ["POST", "GET"]


def test_a_redirect_to_the_same_host_outside_the_base_path_is_not_followed(sandbox, tmp_path):
    answers = {
        ("POST", "/auth/token-v2"): TOKEN,
        ("GET", "/accounts"): redirect(301, "/public/other/accounts"),
    }
    with gateway(sandbox, tmp_path, answers) as bank, make_client(sandbox, bank.base_url) as client:
        with pytest.raises(RedirectRefusedError) as refused:
            client.get_json("/accounts")

    assert_refused(refused, 301, "127.0.0.1 (the same host)")
    assert [seen.path for seen in bank.seen] == [f"{BASE_PATH}/auth/token-v2", f"{BASE_PATH}/accounts"]


@pytest.mark.parametrize(
    "follow", [pytest.param({}, id="default"), pytest.param({"allow_redirects": True}, id="asked")]
)
def test_a_raw_session_cannot_follow_a_redirect_either(sandbox, tmp_path, elsewhere, follow):
    answers = {
        ("POST", "/auth/token-v2"): TOKEN,
        ("GET", "/accounts/1/balance"): redirect(308, elsewhere.url("/accounts/1/balance")),
    }
    with gateway(sandbox, tmp_path, answers) as bank, make_client(sandbox, bank.base_url) as client:
        session = client.session()
        with pytest.raises(RedirectRefusedError) as refused:
            session.get(client.settings.url("/accounts/1/balance"), **follow)

    assert_refused(refused, 308, f"127.0.0.1:{elsewhere.port}")
    assert elsewhere.connections == 0


def test_after_a_fresh_token_is_also_refused_the_hint_gives_the_checklist(sandbox, tmp_path):
    answers = {("POST", "/auth/token-v2"): TOKEN, ("GET", "/accounts/1/balance"): Answer(401, body={})}
    with gateway(sandbox, tmp_path, answers) as bank, make_client(sandbox, bank.base_url) as client:
        with pytest.raises(ApiError) as refused:
            client.get_balance("1")

    assert [seen.method for seen in bank.seen] == ["POST", "GET", "POST", "GET"]  # one re-auth, no more
    assert refused.value.status_code == 401
    assert "fresh token" in refused.value.hint
    assert "also" in refused.value.hint
    assert HINT_INVALID_CREDENTIALS in refused.value.hint
    assert HINT_INVALID_CLIENT_CERTIFICATE in refused.value.hint
    assert HINT_TOKEN_REFUSED not in refused.value.hint  # no promise of a retry that will not come


@pytest.mark.parametrize(
    ("base_url", "what"),
    [
        pytest.param("https://user:{secret}@127.0.0.1:{port}" + BASE_PATH, "password", id="userinfo"),
        pytest.param("https://{secret}@127.0.0.1:{port}" + BASE_PATH, "password", id="user-only"),
        pytest.param("https://127.0.0.1:{port}" + BASE_PATH + "?key={secret}", "query", id="query"),
        pytest.param("https://127.0.0.1:{port}" + BASE_PATH + "#{secret}", "fragment", id="fragment"),
    ],
)
def test_a_base_url_with_userinfo_query_or_fragment_is_refused_before_any_call(
    sandbox, tmp_path, base_url, what
):
    with gateway(sandbox, tmp_path, {}) as bank:
        with pytest.raises(ConfigurationError, match=what) as refused:
            make_client(sandbox, base_url.format(secret="pw-" + SECRET, port=bank.port))

    assert refused.value.field == "host"
    assert SECRET not in str(refused.value)
    assert bank.connections == 0


def test_a_raw_session_never_sends_basic_auth_from_a_url_with_userinfo(sandbox, tmp_path):
    answers = {("POST", "/auth/token-v2"): TOKEN, ("GET", "/accounts/1/balance"): Answer(200, body={})}
    with gateway(sandbox, tmp_path, answers) as bank, make_client(sandbox, bank.base_url) as client:
        session = client.session()
        with pytest.raises(ConfigurationError, match="under the connection's Base URL"):
            session.get(f"https://user:{SECRET}@127.0.0.1:{bank.port}{BASE_PATH}/accounts/1/balance")
        session.get(client.settings.url("/accounts/1/balance")).raise_for_status()

    assert [seen.method for seen in bank.seen] == ["POST", "GET"]
    assert bank.seen[1].headers["Authorization"].startswith("Bearer ")
    assert not any("Basic" in seen.headers.get("Authorization", "") for seen in bank.seen)


def test_the_gateway_is_real_and_follows_a_naive_client(sandbox, tmp_path, elsewhere):
    # The trap the tests above rely on is real: plain requests follows the 307, secret and all.
    answers = {("POST", "/auth/token-v2"): redirect(307, elsewhere.url("/token"))}
    with gateway(sandbox, tmp_path, answers) as bank, requests.Session() as naive:
        naive.trust_env = False
        naive.post(
            bank.base_url + "/auth/token-v2", json={"client_secret": SECRET}, verify=str(sandbox.ca_cert)
        )

    assert elsewhere.connections == 1
    assert SECRET.encode() in elsewhere.seen[0].body

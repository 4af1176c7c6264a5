"""Where an endpoint resolves under the Base URL: the one rule of every entry point (pure, no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_bankapi.client.endpoints import endpoint_url, normalise_endpoint
from airflow_provider_bankapi.client.settings import ClientSettings
from airflow_provider_bankapi.errors import ConfigurationError

BASE = "https://bank.example:8443/public/gw_banking/v1"
TOKEN = "/auth/token-v2"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        pytest.param("/accounts/123/balance", "/accounts/123/balance", id="plain"),
        pytest.param("accounts/123/balance", "/accounts/123/balance", id="relative"),
        pytest.param("  /accounts ", "/accounts", id="spaces-around"),
        pytest.param("/accounts//123///balance", "/accounts/123/balance", id="double-slashes"),
        pytest.param("//accounts", "/accounts", id="scheme-relative-looking"),
        pytest.param("/accounts/./123/x/../balance", "/accounts/123/balance", id="dot-segments-inside"),
        pytest.param("/accounts/%2e%2E/accounts/1", "/accounts/1", id="encoded-dots"),
        pytest.param("/accounts%2f1%2Fbalance", "/accounts/1/balance", id="encoded-slashes"),
        pytest.param("\\accounts\\1%5cbalance%5C", "/accounts/1/balance/", id="backslashes"),
        pytest.param("/%61ccounts/%7E", "/accounts/~", id="encoded-unreserved"),
        pytest.param("/accounts/a%20b%3Ac", "/accounts/a%20b%3Ac", id="other-escapes-kept"),
        pytest.param("/accounts/", "/accounts/", id="trailing-slash-kept"),
        pytest.param("/accounts/1/..", "/accounts/", id="dot-dot-at-the-end"),
        pytest.param("", "/", id="empty-is-the-base"),
    ],
)
def test_endpoints_are_normalised(endpoint, expected):
    assert normalise_endpoint(endpoint) == expected
    assert endpoint_url(BASE, endpoint) == BASE + expected


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param("/accounts/../../../outside/x", id="dot-dot-above-the-base"),
        pytest.param("..", id="bare-dot-dot"),
        pytest.param("/%2e%2e/v2/accounts", id="encoded-dot-dot"),
        pytest.param("/accounts/%2E%2E%2f%2e%2e/x", id="encoded-dots-and-slash"),
        pytest.param("/accounts\\..\\..\\x", id="backslash-dot-dot"),
    ],
)
def test_a_path_above_the_base_is_refused(endpoint):
    with pytest.raises(ConfigurationError, match="outside the Base URL's path") as refused:
        endpoint_url(BASE, endpoint, token_endpoint=TOKEN)
    assert refused.value.field == "endpoint"


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param("/auth/token-v2", id="as-is"),
        pytest.param("/auth/./token-v2", id="dot"),
        pytest.param("/accounts/../auth/token-v2", id="dot-dot"),
        pytest.param("/auth/token-v2/.", id="trailing-dot"),
        pytest.param("/auth/token-v2/", id="trailing-slash"),
        pytest.param("//auth//token-v2", id="double-slashes"),
        pytest.param("/auth/%74oken-v2", id="encoded-letter"),
        pytest.param("/auth%2ftoken-v2", id="encoded-slash"),
        pytest.param("\\auth\\token-v2", id="backslashes"),
        pytest.param("/AUTH/Token-V2", id="case"),
        pytest.param("/accounts/%2e%2e/auth/token-v2", id="encoded-dot-dot"),
    ],
)
def test_a_protected_call_onto_the_token_endpoint_is_refused(endpoint):
    with pytest.raises(ConfigurationError, match="token endpoint") as refused:
        endpoint_url(BASE, endpoint, token_endpoint=TOKEN)
    assert refused.value.field == "endpoint"
    assert endpoint_url(BASE, endpoint).lower().rstrip("/").endswith(TOKEN)  # the token request may


@pytest.mark.parametrize(
    ("endpoint", "what"),
    [
        pytest.param("/auth/token-v2#", "fragment", id="fragment"),
        pytest.param("/accounts?limit=5", "query string", id="query"),
        pytest.param("/accounts/1;x=1/balance", "path parameters", id="path-parameters"),
        pytest.param("https://elsewhere.example/x", "full URL", id="full-url"),
        pytest.param("/accounts/1\r\nX: y", "control characters", id="control-characters"),
    ],
)
def test_what_is_not_a_path_is_refused_with_a_hint(endpoint, what):
    with pytest.raises(ConfigurationError, match=what) as refused:
        endpoint_url(BASE, endpoint, token_endpoint=TOKEN)
    assert refused.value.field == "endpoint"
    assert "params" in refused.value.hint


def test_settings_url_applies_the_rule_and_token_url_is_the_token_endpoint():
    settings = ClientSettings(base_url=BASE + "/", client_id="id", client_secret="secret")
    assert settings.url("/accounts/./1/balance") == BASE + "/accounts/1/balance"
    assert settings.token_url == BASE + TOKEN
    with pytest.raises(ConfigurationError, match="token endpoint"):
        settings.url("/accounts/../auth/token-v2")


def test_the_settings_keep_the_token_path_normalised_and_refuse_calls_onto_any_spelling_of_it():
    settings = ClientSettings(
        base_url=BASE, client_id="id", client_secret="secret", auth_endpoint="/auth/./x/..//%74oken-v2"
    )
    assert settings.auth_endpoint == TOKEN
    assert settings.token_url == BASE + TOKEN
    for spelling in ("/auth/token-v2", "/AUTH/Token-V2/", "/auth/%2e/token-v2"):
        with pytest.raises(ConfigurationError, match="token endpoint"):
            settings.url(spelling)


def test_an_auth_endpoint_above_the_base_is_refused_naming_its_field():
    with pytest.raises(ConfigurationError) as refused:
        ClientSettings(base_url=BASE, client_id="id", client_secret="secret", auth_endpoint="/../auth")
    assert refused.value.field == "auth_endpoint"


_PIECES = st.sampled_from(
    [
        "..",
        ".",
        "",
        "%2e",
        "%2E%2e",
        "%2f",
        "%5c",
        "\\",
        "auth",
        "token-v2",
        "AUTH",
        "accounts",
        "1",
        "%74",
        "~",
    ]
)


@given(
    st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=10), st.sampled_from(["/", "\\", "%2F", ""])
)
def test_whatever_the_input_it_stays_under_the_base_and_off_the_token_endpoint_or_is_refused(pieces, joiner):
    endpoint = joiner.join(pieces)
    try:
        url = endpoint_url(BASE, endpoint, token_endpoint=TOKEN)
    except ConfigurationError as refused:
        field = refused.field
        url = None
    if url is None:
        assert field == "endpoint"
        return
    assert url == BASE or url.startswith(BASE + "/")
    path = url[len(BASE) :]
    assert path.rstrip("/").lower() != TOKEN
    assert normalise_endpoint(path) == path  # sent in normal form: what was checked is what is sent
    segments = path.split("/")
    assert ".." not in segments
    assert "." not in segments

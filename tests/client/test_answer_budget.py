"""Every answer is read under a byte budget, on the wire and once inflated, and refused while it is read.

The sandbox bank serves a gzip bomb (about 1 MB that inflates to 1 GiB) on the path under test: the
token answer, a balance, an error body; a loopback server sends plain bodies past the limit, with and
without a Content-Length. How much memory a refusal costs is measured in ``benchmarks/hostile_input.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from loopback_https import TOKEN, Answer, LoopbackHttps

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.fields import DEFAULT_MAX_RESPONSE_BYTES
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.settings import TOKEN_ANSWER_LIMIT, ClientSettings, TransportSettings
from airflow_provider_bankapi.errors import ResponseTooLargeError

BALANCE = "/accounts/123/balance"
TOKEN_PATH = "/auth/token-v2"
MIB = 1024 * 1024


def make_client(sandbox, base_url=None, **transport):
    transport = {"connect_timeout": 5, "read_timeout": 10, "max_retries": 0, **transport}
    settings = ClientSettings(
        base_url=base_url or sandbox.connection["host"],
        client_id=sandbox.client_id,
        client_secret=sandbox.connection["password"],
        identity=IdentityMaterial(
            client_cert=Path(sandbox.client_cert),
            client_private_key=Path(sandbox.client_key),
            ca_cert=Path(sandbox.ca_cert),
        ),
        transport=TransportSettings(**transport),
    )
    return BankingApiClient(settings, token_stores=[])


@pytest.fixture
def bank(bankapi_sandbox):
    return bankapi_sandbox


def assert_refused(error, *, method, path, status, limit, setting):
    assert isinstance(error, ResponseTooLargeError)
    assert (error.method, error.status_code, error.limit, error.setting) == (method, status, limit, setting)
    assert error.path.endswith(path)
    assert error.message.startswith(f"{method} ")
    assert path in error.message
    assert not error.transient


def test_a_gzip_bomb_as_a_balance_is_refused_at_the_connection_limit(bank):
    with make_client(bank) as client:
        client.get_token()
        bank.inject_fault(BALANCE, "gzip-bomb")
        with pytest.raises(ResponseTooLargeError) as refused:
            client.get_balance("123")
        assert client.get_balance("123")["account_id"] == "123"  # the next call opens a new connection

    assert_refused(
        refused.value,
        method="GET",
        path=BALANCE,
        status=200,
        limit=DEFAULT_MAX_RESPONSE_BYTES,
        setting="max_response_bytes",
    )
    assert "16 MiB once inflated" in refused.value.message
    assert "max_response_bytes" in refused.value.hint


def test_a_gzip_bomb_as_a_token_answer_is_refused_at_the_token_limit(bank):
    bank.inject_fault(TOKEN_PATH, "gzip-bomb")
    with make_client(bank) as client, pytest.raises(ResponseTooLargeError) as refused:
        client.get_token()

    assert_refused(
        refused.value, method="POST", path=TOKEN_PATH, status=200, limit=TOKEN_ANSWER_LIMIT, setting=None
    )
    assert "1 MiB once inflated (the limit of token answers)" in refused.value.message
    assert "auth_endpoint" in refused.value.hint


def test_a_gzip_bomb_as_an_error_body_is_refused(bank):
    with make_client(bank, max_response_bytes=MIB) as client:
        client.get_token()
        bank.inject_fault(BALANCE, "gzip-bomb-500")
        with pytest.raises(ResponseTooLargeError) as refused:
            client.get_balance("123")

    assert_refused(
        refused.value, method="GET", path=BALANCE, status=500, limit=MIB, setting="max_response_bytes"
    )


def test_a_raw_session_reads_under_the_same_budget(bank):
    with make_client(bank) as client:
        session = client.session()
        bank.inject_fault(BALANCE, "gzip-bomb")
        with pytest.raises(ResponseTooLargeError):
            session.get(client.settings.url(BALANCE))
        bank.inject_fault(BALANCE, "gzip-bomb")
        streamed = session.get(client.settings.url(BALANCE), stream=True)  # read by the caller, in chunks
        with pytest.raises(ResponseTooLargeError):
            for _ in streamed.iter_content(64 * 1024):
                pass


@pytest.fixture
def loopback(bank, tmp_path):
    def serve(answer):
        return LoopbackHttps(bank, tmp_path, lambda seen: TOKEN if seen.method == "POST" else answer)

    return serve


@pytest.mark.parametrize(
    "length",
    [
        pytest.param(True, id="content-length-past-the-limit"),
        pytest.param(False, id="no-content-length-read-until-the-limit"),
    ],
)
def test_a_plain_body_past_the_limit_is_refused(bank, loopback, length):
    with loopback(Answer(raw=b" " * (3 * MIB), length=length)) as server:
        with make_client(bank, server.base_url, max_response_bytes=2 * MIB) as client:
            with pytest.raises(ResponseTooLargeError) as refused:
                client.get_balance("123")

    assert_refused(
        refused.value, method="GET", path=BALANCE, status=200, limit=2 * MIB, setting="max_response_bytes"
    )
    assert "once inflated" not in refused.value.message


def test_a_larger_limit_lets_a_legitimately_large_answer_through(bank, loopback):
    statement = {"items": ["x" * 100] * 30_000}  # about 3 MiB of JSON
    with loopback(Answer(body=statement, length=False)) as server:
        with make_client(bank, server.base_url, max_response_bytes=4 * MIB) as client:
            assert client.get_json("/accounts/123/statements") == statement


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({f"X-Filler-{n}": "x" for n in range(150)}, id="more-than-100-headers"),
        pytest.param({"X-Filler": "x" * 70_000}, id="a-header-line-past-64-KiB"),
    ],
)
def test_oversized_headers_are_named_as_such_not_as_a_closed_connection(bank, loopback, headers):
    with loopback(Answer(headers=headers, body={"available": "1.00"})) as server:
        with make_client(bank, server.base_url) as client:
            client.get_token()
            with pytest.raises(ResponseTooLargeError) as refused:
                client.get_balance("123")

    assert "headers past http.client's limits" in refused.value.message
    assert "without an answer" not in refused.value.message
    assert refused.value.path == BALANCE

"""Knobs at run time through the control endpoint: faults, latency, token lifetime, counters, reset.

These tests use the ``bankapi_sandbox`` fixture of the pytest plugin, as users' tests would.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import requests

from bankapi_sandbox import FaultKind
from bankapi_sandbox.control import ControlError
from bankapi_sandbox.state import ALL_FAULT_KINDS

BALANCE = "/accounts/123/balance"


@pytest.fixture
def sandbox(bankapi_sandbox):
    return bankapi_sandbox


@pytest.mark.parametrize(
    ("retry_after", "expected"), [pytest.param(None, "1", id="default"), pytest.param(7, "7", id="seven")]
)
def test_429_with_retry_after_for_the_next_n_requests(client, sandbox, retry_after, expected):
    token = client.access_token()
    sandbox.inject_fault(BALANCE, "429", count=2, retry_after=retry_after)
    for _ in range(2):
        response = client.balance(token)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == expected
        assert "Too Many Requests" in response.text
    assert client.balance(token).status_code == 200
    assert sandbox.counters()["faults_served"] == {"429": 2}


def test_every_fault_kind_the_bank_serves_has_a_member():
    assert sorted(kind.value for kind in FaultKind) == sorted(ALL_FAULT_KINDS)


def test_a_fault_kind_member_injects_its_fault(client, sandbox):
    token = client.access_token()
    sandbox.inject_fault(BALANCE, FaultKind.SERVICE_UNAVAILABLE)
    assert sandbox.pending_faults()["/accounts/123/balance"]["kind"] == "503"
    assert client.balance(token).status_code == 503
    assert sandbox.counters()["faults_served"] == {"503": 1}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/auth/token-v2", id="relative"),
        pytest.param("/public/gw_banking/v1/auth/token-v2", id="full"),
    ],
)
def test_503_on_the_token_endpoint(client, sandbox, path):
    sandbox.inject_fault(path, "503")
    response = client.token()
    assert response.status_code == 503
    assert "Retry-After" not in response.headers
    assert client.token().status_code == 200
    counters = sandbox.counters()
    assert (counters["tokens_issued"], counters["api_requests"]) == (1, 0)


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [pytest.param("502", "Bad Gateway", id="502"), pytest.param("504", "Gateway Timeout", id="504")],
)
def test_gateway_errors_on_the_token_endpoint(client, sandbox, kind, phrase):
    sandbox.inject_fault("/auth/token-v2", kind, count=2)
    for _ in range(2):
        response = client.token()
        assert (response.status_code, response.json()["message"]) == (int(kind), phrase)
    assert client.token().status_code == 200
    counters = sandbox.counters()
    assert (counters["faults_served"], counters["tokens_issued"]) == ({kind: 2}, 1)


def test_trickle_sends_a_200_whose_body_comes_byte_by_byte(client, sandbox):
    token = client.access_token()
    sandbox.inject_fault(BALANCE, "trickle")
    with client.session.get(
        f"{sandbox.base_url}{BALANCE}", headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=5
    ) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) > 40
        assert response.raw.read(3) == b'{"t'  # three reads of one byte, each in time
    assert sandbox.counters()["faults_served"] == {"trickle": 1}
    assert client.balance(token).status_code == 200


def test_fault_on_any_path(client, sandbox):
    token = client.access_token()
    sandbox.inject_fault("*", "503", count=2, retry_after=3)
    assert client.token().status_code == 503
    response = client.get("/accounts", token)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "3")
    assert client.balance(token).status_code == 200


def test_a_fault_after_n_requests_lets_them_through_first(client, sandbox):
    token = client.access_token()
    sandbox.inject_fault(BALANCE, "503", count=1, after=2)
    statuses = [client.balance(token).status_code for _ in range(4)]
    assert statuses == [200, 200, 503, 200]


def test_drop_closes_the_connection_without_a_response(client, sandbox):
    token = client.access_token()
    sandbox.inject_fault(BALANCE, "drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        client.balance(token)
    assert client.balance(token).status_code == 200
    counters = sandbox.counters()
    assert counters["faults_served"] == {"drop": 1}
    assert counters["tls_connections"] == 2  # the dropped connection was not reused


def test_hang_holds_the_request_until_the_client_gives_up(client_factory, sandbox):
    hanging, other = client_factory(), client_factory()
    token = other.access_token()
    sandbox.inject_fault(BALANCE, "hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        hanging.session.get(
            f"{sandbox.base_url}{BALANCE}", headers={"Authorization": f"Bearer {token}"}, timeout=(5, 0.3)
        )
    # One hanging request holds its own connection only: others are served meanwhile.
    assert other.balance(token).status_code == 200


def test_latency_delays_every_response(client, sandbox):
    token = client.access_token()
    sandbox.set_latency(2.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.session.get(
            f"{sandbox.base_url}{BALANCE}", headers={"Authorization": f"Bearer {token}"}, timeout=(5, 0.2)
        )
    sandbox.set_latency(0)
    assert client.balance(token).status_code == 200


def test_token_lifetime_knob(client, sandbox):
    sandbox.set_token_lifetime(120)
    assert client.token().json()["expires_in"] == 120


@pytest.mark.bankapi_sandbox(expires_in=42, latency=0.01)
def test_marker_passes_options_to_the_fixture(client, sandbox):
    assert client.token().json()["expires_in"] == 42
    assert sandbox.settings() == {"latency": 0.01, "token_lifetime": 42}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda s: s.inject_fault(BALANCE, "500"), "fault kind", id="unknown-kind"),
        pytest.param(lambda s: s.inject_fault(BALANCE, "429", count=0), "count", id="zero-count"),
        pytest.param(lambda s: s.inject_fault(BALANCE, "503", after=-1), "after", id="negative-after"),
        pytest.param(lambda s: s.set_token_lifetime(0), "token lifetime", id="zero-lifetime"),
        pytest.param(lambda s: s.set_latency(-1), "latency", id="negative-latency"),
        pytest.param(lambda s: s.set_available_balance("123", "lots"), "amount", id="balance-not-money"),
    ],
)
def test_knobs_refuse_bad_values(sandbox, call, message):
    with pytest.raises(ControlError, match=message):
        call(sandbox)


def test_counters_count_by_kind_and_reason(client_factory, sandbox, foreign_identity, eventually):
    client = client_factory()
    token = client.access_token()
    client.token(client_secret="wrong")
    client.token(grant_type="password")
    client.balance(token)
    client.get("/accounts", token)
    with pytest.raises(requests.exceptions.ConnectionError):
        client_factory(*foreign_identity).token()
    assert eventually(lambda: sandbox.counters()["tls_handshake_failures"] == 1)
    assert sandbox.counters() == {
        "tokens_issued": 1,
        "token_refused": {"invalid_credentials": 1, "unsupported_grant_type": 1},
        "api_requests": 2,
        "tls_connections": 1,
        "tls_handshake_failures": 1,
        "faults_served": {},
    }
    sandbox.reset_counters()
    assert sandbox.counters()["tokens_issued"] == 0
    assert client.balance(token).status_code == 200  # resetting counters keeps tokens


def test_an_available_balance_set_is_served_until_reset(client, sandbox):
    token = client.access_token()
    sandbox.set_available_balance("123", "2000.00")
    assert client.balance(token).json()["available"] == "2000.00"
    assert client.get("/accounts/456/balance", token).json()["available"] != "2000.00"  # that account only
    sandbox.reset()
    assert client.balance(client.access_token()).json()["available"] != "2000.00"


def test_reset_restores_the_start(client, sandbox):
    token = client.access_token()
    sandbox.set_token_lifetime(5)
    sandbox.inject_fault(BALANCE, "503", count=3)
    sandbox.reset()
    assert sandbox.counters()["tokens_issued"] == 0
    assert client.balance(token).status_code == 401  # tokens revoked
    assert client.token().json()["expires_in"] == 3600
    assert client.balance(client.access_token()).status_code == 200  # fault cleared


def test_control_endpoint_answers_json(sandbox):
    with urllib.request.urlopen(f"{sandbox.control_url}/health", timeout=5) as response:
        assert json.loads(response.read())["base_url"] == sandbox.base_url
    request = urllib.request.Request(f"{sandbox.control_url}/settings", data=b'{"speed": 1}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 400
    assert "unknown setting" in json.loads(raised.value.read())["error"]
    raised.value.close()
    assert sandbox.pending_faults() == {}
    sandbox.inject_fault(BALANCE, "hang", count=2)
    assert sandbox.pending_faults() == {BALANCE: {"kind": "hang", "remaining": 2, "retry_after": None}}
    sandbox.clear_faults()
    assert sandbox.pending_faults() == {}

"""BankingApiClient against the sandbox bank over real mutual TLS."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

import pytest
import requests
from bank_day import BankDay

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.probe import ProbeReport
from airflow_provider_bankapi.client.settings import ClientSettings, TransportSettings
from airflow_provider_bankapi.client.tokens.cache import MemoryTokenStore, stores_for
from airflow_provider_bankapi.client.tokens.host import HostTokenStore
from airflow_provider_bankapi.client.transport.failures import map_transport_error
from airflow_provider_bankapi.errors import (
    HINT_FRESH_TOKEN_REFUSED,
    ApiError,
    ClientIdentityError,
    ConfigurationError,
    ConnectionFailedError,
    ForbiddenError,
    InvalidClientCertificateError,
    InvalidCredentialsError,
    RateLimitedError,
    ServerError,
    TlsHandshakeError,
)
from bankapi_sandbox import pki

FAST = TransportSettings(backoff_base=0.01, backoff_max=0.05, max_total_wait=2, read_timeout=5)


def settings_for(sandbox, *, secret: str | None = None, pfx: bool = False, **overrides) -> ClientSettings:
    connection = json.loads(sandbox.connection_pfx_json if pfx else sandbox.connection_json)
    return ClientSettings(
        base_url=connection["host"],
        client_id=connection["login"],
        client_secret=secret if secret is not None else connection["password"],
        identity=IdentityMaterial.from_extra(connection["extra"]),
        transport=overrides.pop("transport", FAST),
        **overrides,
    )


@pytest.fixture
def client(bankapi_sandbox):
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=[MemoryTokenStore()]) as made:
        yield made


@pytest.mark.parametrize("pfx", [pytest.param(False, id="pem"), pytest.param(True, id="pfx")])
def test_balance_with_a_token_fetched_over_the_same_certificate(bankapi_sandbox, pfx):
    with BankingApiClient(settings_for(bankapi_sandbox, pfx=pfx), token_stores=[]) as client:
        balance = client.get_balance("123")
    assert balance["account_id"] == "123"
    assert bankapi_sandbox.counters()["tokens_issued"] == 1


def test_200_sequential_calls_use_one_tls_connection_and_one_token(bankapi_sandbox, client):
    for number in range(200):
        client.get_balance(str(number % 7))
    counters = bankapi_sandbox.counters()
    assert counters["tls_connections"] == 1
    assert counters["tokens_issued"] == 1
    assert counters["api_requests"] == 200


def test_a_revoked_token_is_dropped_and_the_call_retried_once(bankapi_sandbox, client):
    first = client.get_token()
    bankapi_sandbox.revoke_tokens()
    assert client.get_balance("1")["account_id"] == "1"
    assert client.get_token().access_token != first.access_token
    assert bankapi_sandbox.counters()["tokens_issued"] == 2


@pytest.mark.parametrize("entry_point", ["client-call", "raw-session"])
def test_a_token_refused_again_after_its_renewal_is_not_renewed_twice(bankapi_sandbox, client, entry_point):
    client.get_token()
    BankDay(bankapi_sandbox).set_fault_mix(seed=1, rate=1.0, kinds=["revoke"], paths="/accounts/*/balance")

    if entry_point == "client-call":
        with pytest.raises(ApiError) as caught:
            client.get_balance("7")
        assert caught.value.status_code == 401
        assert caught.value.hint == HINT_FRESH_TOKEN_REFUSED  # told apart from a first refusal
    else:
        answer = client.session().get(client.settings.url("/accounts/7/balance"), timeout=10)
        assert answer.status_code == 401
        assert [earlier.status_code for earlier in answer.history] == [401]
    assert bankapi_sandbox.counters()["tokens_issued"] == 2


def test_a_token_stale_by_the_margin_is_renewed(bankapi_sandbox):
    bankapi_sandbox.set_token_lifetime(60)
    now = [1_000_000.0]
    settings = settings_for(bankapi_sandbox, refresh_margin=300)
    with BankingApiClient(settings, token_stores=[MemoryTokenStore()], clock=lambda: now[0]) as client:
        first = client.get_token()
        now[0] += 29  # margin is capped at half the 60 s lifetime: still fresh
        assert client.get_token() == first
        now[0] += 2
        assert client.get_token() != first
    assert bankapi_sandbox.counters()["tokens_issued"] == 2


def test_without_ca_cert_openssls_trust_store_applies_and_requests_variables_change_nothing(
    bankapi_sandbox, monkeypatch, tmp_path
):
    sandbox_ca = str(bankapi_sandbox.ca_cert)
    settings = settings_for(bankapi_sandbox)
    settings = dataclasses.replace(settings, identity=dataclasses.replace(settings.identity, ca_cert=None))
    # requests' and curl's variables name the sandbox's CA; OpenSSL's name an empty store.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox_ca)
    monkeypatch.setenv("CURL_CA_BUNDLE", sandbox_ca)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with BankingApiClient(settings, token_stores=[]) as client, pytest.raises(TlsHandshakeError) as caught:
        client.get_token()
    assert caught.value.verify_code in (19, 20)  # the sandbox CA is trusted by nothing

    monkeypatch.setenv("SSL_CERT_FILE", sandbox_ca)
    with BankingApiClient(settings, token_stores=[]) as client:
        assert client.get_balance("1")["account_id"] == "1"


def test_paginate_follows_the_cursor_to_the_last_page(client):
    pages = list(client.paginate("/accounts/42/transactions", params={"limit": 7}))
    assert len(pages) > 1
    assert pages[-1]["next_cursor"] is None
    ids = [item["transaction_id"] for page in pages for item in page["items"]]
    assert len(ids) == len(set(ids))


def test_rate_limit_honoured_then_success(bankapi_sandbox, client):
    bankapi_sandbox.inject_fault("/accounts/9/balance", "429", count=1, retry_after=0)
    assert client.get_balance("9")["account_id"] == "9"


def test_rate_limit_exhausted_is_rate_limited_error(bankapi_sandbox, client):
    bankapi_sandbox.inject_fault("/accounts/9/balance", "429", count=20, retry_after=0)
    with pytest.raises(RateLimitedError):
        client.get_balance("9")


def test_wrong_secret_is_invalid_credentials_with_the_banks_checklist(bankapi_sandbox):
    secret = "definitely-not-the-secret-1234"
    with BankingApiClient(settings_for(bankapi_sandbox, secret=secret), token_stores=[]) as client:
        with pytest.raises(InvalidCredentialsError) as caught:
            client.get_balance("1")
    assert caught.value.status_code == 401
    assert "active" in caught.value.hint
    assert secret not in str(caught.value)


@pytest.fixture
def shared_stores(tmp_path):
    """The stores of ``cache_scope=host`` as two connections of one process share them."""
    return [MemoryTokenStore(), HostTokenStore(tmp_path / "tokens")]


def test_a_wrong_secret_gets_the_banks_401_and_leaves_the_good_connections_token(
    bankapi_sandbox, shared_stores
):
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=shared_stores) as good:
        good.get_balance("1")
        token = good.get_token()
    wrong = settings_for(bankapi_sandbox, secret="wrong-secret-same-client-id-and-certificate")

    with BankingApiClient(wrong, token_stores=shared_stores) as client:
        with pytest.raises(InvalidCredentialsError) as caught:
            client.get_balance("2")

    assert caught.value.bank_reason == "Invalid Credentials"  # the bank's answer, not a cached token
    counters = bankapi_sandbox.counters()
    assert counters["tokens_issued"] == 1
    assert sum(counters["token_refused"].values()) == 1
    assert counters["api_requests"] == 1  # the wrong connection made no protected call
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=shared_stores) as good:
        assert good.get_balance("3")["account_id"] == "3"
        assert good.get_token().access_token == token.access_token  # still cached, never evicted
    assert shared_stores[1].load(good._token_key).access_token == token.access_token
    assert bankapi_sandbox.counters()["tokens_issued"] == 1


def test_a_secret_rotated_in_core_means_a_new_token_for_the_new_secret(bankapi_sandbox, shared_stores):
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=shared_stores) as old:
        old_token = old.get_token()
    _, secret = bankapi_sandbox.core.rotate_secret(bankapi_sandbox.client_id)

    with BankingApiClient(settings_for(bankapi_sandbox, secret=secret), token_stores=shared_stores) as new:
        assert new.get_balance("1")["account_id"] == "1"
        new_token = new.get_token()

    assert new_token.access_token != old_token.access_token
    assert bankapi_sandbox.counters()["tokens_issued"] == 2
    # The old secret no longer gets a token of its own from the bank (its cached one lives on, unshared).
    with BankingApiClient(settings_for(bankapi_sandbox), token_stores=[]) as old:
        with pytest.raises(InvalidCredentialsError):
            old.get_token()


def test_unbound_certificate_is_invalid_client_certificate(bankapi_sandbox, tmp_path):
    other = bankapi_sandbox.issue_client_certificate("not-bound", bind=False)
    connection = json.loads(bankapi_sandbox.connection_json)
    settings = settings_for(bankapi_sandbox)
    settings = ClientSettings(
        base_url=settings.base_url,
        client_id=settings.client_id,
        client_secret=connection["password"],
        identity=IdentityMaterial(
            client_cert=str(other.certificate),
            client_private_key=str(other.private_key),
            ca_cert=connection["extra"]["ca_cert"],
        ),
        transport=FAST,
    )
    with BankingApiClient(settings, token_stores=[]) as client, pytest.raises(InvalidClientCertificateError):
        client.get_token()


def test_ip_not_on_the_allowlist_is_forbidden(bankapi_sandbox, client):
    bankapi_sandbox.core.set_allowed_ips(bankapi_sandbox.client_id, ["192.0.2.10"])
    with pytest.raises(ForbiddenError) as caught:
        client.get_token()
    assert "allowlist" in caught.value.hint


def test_certificate_from_another_ca_is_rejected_in_the_handshake(bankapi_sandbox, tmp_path):
    foreign = pki.issue_client_certificate(pki.make_ca("Another bank"))
    cert = pki.write_public(tmp_path / "c.crt", foreign.certificate_pem())
    key = pki.write_private(tmp_path / "c.key", foreign.private_key_pem())
    base = settings_for(bankapi_sandbox)
    settings = ClientSettings(
        base_url=base.base_url,
        client_id=base.client_id,
        client_secret=base.client_secret,
        identity=IdentityMaterial(
            client_cert=str(cert), client_private_key=str(key), ca_cert=str(bankapi_sandbox.ca_cert)
        ),
        transport=FAST,
    )
    with BankingApiClient(settings, token_stores=[]) as client, pytest.raises(TlsHandshakeError) as caught:
        client.get_token()
    assert caught.value.client_certificate_rejected
    # What a task log shows: the provider's error with its reason and checklist, not first the three
    # SSLErrors requests wraps it in (the original stays reachable, on __context__, for a debugger).
    printed = "".join(traceback.format_exception(caught.value))
    assert printed.count("Traceback (most recent call last)") == 1
    assert "SSLError" not in printed
    assert printed.rstrip().splitlines()[-1].startswith("airflow_provider_bankapi.errors.TlsHandshakeError: ")
    assert isinstance(caught.value.__context__, requests.RequestException)


def test_probe_succeeds_and_names_the_tls_version(client):
    report = client.probe()
    assert report.ok, str(report)
    assert "TLS" in report.message


@pytest.mark.parametrize(
    ("change", "step", "error_word"),
    [
        pytest.param({"secret": "wrong-secret-xyz"}, "token", "Credentials", id="bad-secret"),
        pytest.param({"base_url_port": 1}, "TLS handshake", "", id="nothing-listening"),
    ],
)
def test_probe_names_the_failing_step(bankapi_sandbox, change, step, error_word):
    settings = settings_for(bankapi_sandbox, secret=change.get("secret"))
    if "base_url_port" in change:
        settings = ClientSettings(
            base_url="https://127.0.0.1:1/public/gw_banking/v1",
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            identity=settings.identity,
            transport=FAST,
        )
    report = BankingApiClient(settings, token_stores=[]).probe()
    assert isinstance(report, ProbeReport)
    assert not report.ok
    assert report.step == step
    assert error_word in report.message
    assert "wrong-secret-xyz" not in str(report)


def test_probe_reports_a_bad_identity_before_any_network_call(bankapi_sandbox, tmp_path):
    settings = settings_for(bankapi_sandbox)
    broken = ClientSettings(
        base_url=settings.base_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        identity=IdentityMaterial(
            client_cert=str(bankapi_sandbox.dir / "client.crt"), client_private_key="garbage"
        ),
    )
    report = BankingApiClient(broken, token_stores=[]).probe()
    assert (report.ok, report.step) == (False, "client identity")
    assert bankapi_sandbox.counters()["tls_connections"] == 0
    with pytest.raises(ClientIdentityError):
        _ = BankingApiClient(broken, token_stores=[]).identity


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        pytest.param("base_url", "http://bank.example/public/gw_banking/v1", "host", id="not-https"),
        pytest.param("client_id", "", "login", id="no-client-id"),
        pytest.param("client_secret", "", "password", id="no-secret"),
        pytest.param("auth_endpoint", "auth/token-v2", "auth_endpoint", id="relative-auth-endpoint"),
    ],
)
def test_settings_name_the_connection_field(field, value, named):
    values = {"base_url": "https://bank.example/v1", "client_id": "id", "client_secret": "s", field: value}
    with pytest.raises(ConfigurationError) as caught:
        ClientSettings(**values)
    assert caught.value.field == named


def test_a_full_url_is_refused_so_credentials_only_go_to_the_bank(client):
    with pytest.raises(ConfigurationError):
        client.get_json("https://elsewhere.example/steal")


def test_unknown_cache_scope_is_a_configuration_error():
    with pytest.raises(ConfigurationError) as caught:
        stores_for("everywhere")
    assert caught.value.field == "cache_scope"


def test_non_json_success_body_is_an_api_error(bankapi_sandbox, client, monkeypatch):
    response = client.request("GET", "/accounts/1/balance")
    monkeypatch.setattr(client, "request", lambda *a, **k: _with_body(response, b"<html>oops</html>"))
    with pytest.raises(ApiError, match="not JSON"):
        client.get_json("/accounts/1/balance")


def _with_body(response, body):
    response._content = body
    return response


def test_no_secret_or_token_in_logs(bankapi_sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    settings = settings_for(bankapi_sandbox)
    with BankingApiClient(settings, token_stores=[MemoryTokenStore()]) as client:
        token = client.get_token().access_token
        client.get_balance("1")
        bankapi_sandbox.revoke_tokens()
        client.get_balance("2")
    text = caplog.text + repr(client.settings)
    assert settings.client_secret not in text
    assert token not in text


CHILD = textwrap.dedent(
    """
    import json, sys
    from airflow_provider_bankapi.client.api import BankingApiClient
    from airflow_provider_bankapi.client.tokens.cache import stores_for
    from airflow_provider_bankapi.client.settings import ClientSettings
    from airflow_provider_bankapi.client.identity.material import IdentityMaterial
    from airflow_provider_bankapi.errors import BankingApiError

    connection = json.loads(sys.argv[1])
    secret = sys.argv[2] if len(sys.argv) > 2 else connection["password"]
    sys.stdin.readline()  # start together
    settings = ClientSettings(
        base_url=connection["host"], client_id=connection["login"], client_secret=secret,
        identity=IdentityMaterial.from_extra(connection["extra"]),
    )
    with BankingApiClient(settings, token_stores=stores_for("host")) as client:
        try:
            print(client.get_balance("7")["account_id"], flush=True)
        except BankingApiError as exc:
            print(type(exc).__name__, exc.bank_reason, flush=True)
    """
)


def test_ten_processes_on_a_cold_host_cache_fetch_one_token(bankapi_sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, bankapi_sandbox.connection_json],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=120)[0].strip() for child in children]
    assert outputs == ["7"] * 10
    assert [child.returncode for child in children] == [0] * 10
    assert bankapi_sandbox.counters()["tokens_issued"] == 1
    assert any(Path(tmp_path / "cache").rglob("*")), "the host store wrote nothing"


def test_processes_with_a_wrong_secret_neither_use_nor_evict_the_host_cached_token(
    bankapi_sandbox, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def child(*secret: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", CHILD, bankapi_sandbox.connection_json, *secret],
            input="go\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return run.stdout.strip()

    assert child() == "7"
    assert child("wrong-secret-in-another-process") == "InvalidCredentialsError Invalid Credentials"
    assert child() == "7"
    counters = bankapi_sandbox.counters()
    assert counters["tokens_issued"] == 1  # the good processes shared one token; the wrong one got none
    assert sum(counters["token_refused"].values()) == 1


def test_host_store_is_used_by_default(bankapi_sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    stores = stores_for("host")
    assert any(isinstance(store, HostTokenStore) for store in stores)


def test_a_raw_session_sends_the_token_to_the_bank_only(bankapi_sandbox, client):
    session = client.session()

    answer = session.get(client.settings.url("/accounts/7/balance"), timeout=10)
    before = bankapi_sandbox.counters()
    with pytest.raises(ConfigurationError) as caught:
        session.get("https://elsewhere.example/public/gw_banking/v1/accounts/7/balance", timeout=5)

    assert answer.json()["account_id"] == "7"
    assert caught.value.field == "endpoint"
    assert bankapi_sandbox.counters() == before  # refused before any connection or token request


# -- a deadline per attempt; the token POST retried on gateway errors ------------------------------

TRICKLE_SETTINGS = TransportSettings(connect_timeout=2, read_timeout=2, max_retries=0)


@pytest.mark.parametrize(
    "entry_point",
    [
        pytest.param(lambda client: client.get_balance("123"), id="client-call"),
        pytest.param(
            lambda client: client.session().get(client.settings.url("/accounts/123/balance")),
            id="raw-session",
        ),
    ],
)
def test_a_trickled_balance_ends_at_the_deadline(bankapi_sandbox, entry_point):
    settings = settings_for(bankapi_sandbox, transport=TRICKLE_SETTINGS)
    with BankingApiClient(settings, token_stores=[MemoryTokenStore()]) as client:
        client.get_token()
        bankapi_sandbox.inject_fault("/accounts/123/balance", "trickle")  # one byte per 0.5 s
        started = time.monotonic()
        with pytest.raises((ConnectionFailedError, requests.RequestException)) as caught:
            entry_point(client)
        elapsed = time.monotonic() - started
    # A raw Session raises requests' own error; the client maps it the same way.
    error = map_transport_error(caught.value, method="GET", path="/accounts/123/balance")
    assert isinstance(error, ConnectionFailedError)
    assert error.timed_out
    assert "the whole answer took longer than 2 s" in error.message
    assert elapsed < 2 + 2 + 3  # connect + answer timeouts, with a generous margin


def test_the_probe_ends_a_trickled_answer_at_the_deadline(bankapi_sandbox):
    settings = settings_for(bankapi_sandbox, transport=TRICKLE_SETTINGS)
    bankapi_sandbox.inject_fault("*", "trickle")
    client = BankingApiClient(settings, token_stores=[])
    started = time.monotonic()
    report = client.probe()
    assert time.monotonic() - started < 2 + 2 + 3
    assert (report.ok, report.step) == (False, "TLS handshake")
    assert "the whole answer took longer than 2 s" in report.message


@pytest.mark.parametrize("kind", [pytest.param("502", id="502"), pytest.param("504", id="504")])
def test_the_token_request_is_retried_on_a_gateway_error(bankapi_sandbox, client, kind):
    bankapi_sandbox.inject_fault("/auth/token-v2", kind, count=2)
    assert client.get_balance("123")["account_id"] == "123"
    counters = bankapi_sandbox.counters()
    assert (counters["faults_served"], counters["tokens_issued"]) == ({kind: 2}, 1)


def test_a_token_request_failing_every_time_says_how_many_attempts(bankapi_sandbox, client):
    bankapi_sandbox.inject_fault("/auth/token-v2", "504", count=10)
    with pytest.raises(ServerError) as caught:
        client.get_token()
    attempts = FAST.max_retries + 1
    assert bankapi_sandbox.counters()["faults_served"] == {"504": attempts}
    assert f"answered 504 Gateway Timeout after {attempts} attempts" in caught.value.message
    assert "retried with backoff" not in str(caught.value)

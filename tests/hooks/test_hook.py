"""BankingApiHook against the sandbox bank over real mutual TLS, with the connection from AIRFLOW_CONN_*."""

from __future__ import annotations

import base64
import json
import logging
import math
import secrets

import pytest
from airflow.sdk.log import redact
from bank_day import BankDay

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.batch import BatchResult
from airflow_provider_bankapi.client.fields import TOKEN_PATH
from airflow_provider_bankapi.client.tokens.host import HostTokenStore, default_cache_dir
from airflow_provider_bankapi.client.tokens.values import AccessToken
from airflow_provider_bankapi.errors import ApiError, ConfigurationError
from airflow_provider_bankapi.hooks.bankapi import BankingApiHook, settings_from_connection
from bankapi_sandbox import data, pki

CONN_ID = "bankapi_hook_test"


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """This test's own host token store ($XDG_CACHE_HOME), so its files can be inspected."""
    home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.fixture
def connect(bankapi_sandbox, airflow_connection, cache_home):
    """``connect(**changes)`` defines the sandbox's connection (changed as asked) and returns its hook."""

    def define(conn_id=CONN_ID, *, pfx=False, extra=None, **fields):
        connection = bankapi_sandbox.connection_pfx if pfx else bankapi_sandbox.connection
        connection = {**connection, **fields, "extra": {**connection["extra"], **(extra or {})}}
        airflow_connection(conn_id, connection)
        return BankingApiHook(bankapi_conn_id=conn_id)

    return define


def test_conventional_class_attributes():
    assert (BankingApiHook.conn_name_attr, BankingApiHook.default_conn_name) == (
        "bankapi_conn_id",
        "bankapi_default",
    )
    assert (BankingApiHook.conn_type, BankingApiHook.hook_name) == ("bankapi", "Banking API")
    assert BankingApiHook().bankapi_conn_id == "bankapi_default"


@pytest.mark.airflow
def test_no_io_in_init_even_for_a_connection_that_does_not_exist():
    hook = BankingApiHook(bankapi_conn_id="no_such_connection_anywhere")  # as DAG parsing would

    assert hook.bankapi_conn_id == "no_such_connection_anywhere"
    with pytest.raises(Exception, match="no_such_connection_anywhere"):
        _ = hook.client  # the lookup happens on first use, and only then


def test_no_network_until_the_first_call(bankapi_sandbox, connect):
    hook = connect()
    _ = hook.client, hook.describe_certificate()  # connection read, identity validated: still local
    assert bankapi_sandbox.counters()["tls_connections"] == 0


# -- every method, over one token ---------------------------------------------------------------------


def test_every_call_works_over_one_token(bankapi_sandbox, connect):
    hook = connect()

    token = hook.get_token()
    balance = hook.get_balance("123")
    batch = hook.get_balances(["1", "2", "3"], max_workers=2)
    accounts = hook.get_json("/accounts")
    page = hook.get_json("/accounts/42/transactions", {"limit": 5})
    pages = list(hook.paginate("/accounts/42/transactions", params={"limit": 7}))
    response = hook.request("GET", "/accounts/7/balance")

    assert isinstance(token, AccessToken)
    assert token.is_fresh(token.issued_at)
    assert balance["account_id"] == "123"
    assert isinstance(batch, BatchResult)
    assert batch.ok
    assert sorted(batch.succeeded) == ["1", "2", "3"]
    assert accounts
    assert len(page["items"]) == 5
    assert len(pages) > 1
    assert pages[-1]["next_cursor"] is None
    assert response.status_code == 200
    assert response.json()["account_id"] == "7"
    assert bankapi_sandbox.counters()["tokens_issued"] == 1


@pytest.mark.parametrize(
    ("endpoint", "pagination", "records_path"),
    [
        pytest.param("/open-banking/accounts/42/transactions", "links", "data", id="links"),
        pytest.param("/open-banking/accounts/42/transactions", "page", None, id="page"),
        pytest.param("/linked/accounts/42/transactions", "link_header", None, id="link_header"),
        pytest.param("/accounts/42/transactions", "cursor", None, id="cursor"),
    ],
)
def test_records_of_every_page_in_each_style(bankapi_sandbox, connect, endpoint, pagination, records_path):
    hook = connect()
    size = 10
    params = {"limit": size} if pagination == "cursor" else {"page-size": size}
    hook.get_token()
    BankDay(bankapi_sandbox).take_requests()

    records = list(hook.records(endpoint, params=params, pagination=pagination, records_path=records_path))

    total = data.transaction_count("42")
    ids = [r.get("transactionId") or r.get("transaction_id") for r in records]
    assert ids == [f"42-{i:05d}" for i in range(total)]
    assert len(BankDay(bankapi_sandbox).take_requests()) == math.ceil(total / size)  # one request per page


def test_max_pages_stops_a_walk_with_an_error(connect):
    hook = connect()

    with pytest.raises(ApiError, match="after 2 pages"):
        list(
            hook.paginate(
                "/open-banking/accounts/42/transactions",
                params={"page-size": 1},
                pagination="links",
                max_pages=2,
            )
        )


def test_paginate_with_a_custom_next_page(connect):
    hook = connect()
    seen = []

    def two_pages(page):
        seen.append(page["next_cursor"])
        return {"cursor": page["next_cursor"]} if len(seen) < 2 else None

    pages = list(hook.paginate("/accounts/42/transactions", params={"limit": 3}, next_page=two_pages))

    assert len(pages) == 2
    assert pages[0]["items"] != pages[1]["items"]


@pytest.mark.parametrize("pfx", [pytest.param(False, id="pem-files"), pytest.param(True, id="pfx")])
def test_describe_certificate_and_balance_with_either_identity(bankapi_sandbox, connect, pfx):
    hook = connect(pfx=pfx)

    description = hook.describe_certificate()

    assert "sandbox-client" in description.subject
    assert description.client_auth
    assert description.days_left > 300
    assert hook.get_balance("55")["account_id"] == "55"


def test_get_conn_session_adds_the_bearer_token_to_absolute_urls_under_the_base_url(bankapi_sandbox, connect):
    hook = connect()
    session = hook.get_conn()

    response = session.get(hook.client.settings.url("/accounts/9/balance"), timeout=10)
    again = session.get(bankapi_sandbox.base_url + "/accounts/10/balance", timeout=10)

    assert response.status_code == 200
    assert response.json()["account_id"] == "9"
    assert again.json()["account_id"] == "10"
    assert response.request.headers["Authorization"] == f"Bearer {hook.get_token().access_token}"
    assert bankapi_sandbox.counters()["tokens_issued"] == 1


def test_a_get_conn_session_renews_a_revoked_token_once(bankapi_sandbox, connect):
    hook = connect()
    session = hook.get_conn()
    url = hook.client.settings.url("/accounts/9/balance")
    first = session.get(url, timeout=10)
    bankapi_sandbox.revoke_tokens()

    again = session.get(url, timeout=10)

    assert again.json()["account_id"] == "9"
    assert [earlier.status_code for earlier in again.history] == [401]
    assert again.request.headers["Authorization"] == f"Bearer {hook.get_token().access_token}"
    assert again.request.headers["Authorization"] != first.request.headers["Authorization"]
    assert bankapi_sandbox.counters()["tokens_issued"] == 2


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://elsewhere.example/public/gw_banking/v1/accounts/1/balance", id="other-host"),
        pytest.param("{origin}:1/public/gw_banking/v1/accounts/1/balance", id="other-port"),
        pytest.param("{origin}/public/gw_banking/v2/accounts/1/balance", id="outside-the-base-path"),
        pytest.param("{base}-evil/accounts/1/balance", id="base-path-prefix-trick"),
    ],
)
def test_get_conn_session_refuses_urls_outside_the_base_url_before_connecting(bankapi_sandbox, connect, url):
    hook = connect()
    session = hook.get_conn()
    base = bankapi_sandbox.base_url
    origin = base.split("/public/")[0]
    if "{origin}:1" in url:
        origin = origin.rsplit(":", 1)[0]

    with pytest.raises(ConfigurationError) as caught:
        session.get(url.format(origin=origin, base=base), timeout=5)

    assert caught.value.field == "endpoint"
    counters = bankapi_sandbox.counters()
    assert (counters["tls_connections"], counters["tokens_issued"]) == (0, 0)


# -- test_connection: the real probe, each failure naming its step and the bank's checklist ----------


def test_test_connection_succeeds(bankapi_sandbox, connect):
    ok, message = connect().test_connection()

    assert ok, message
    assert "TLS" in message
    assert "sandbox-client" in message
    assert bankapi_sandbox.counters()["tokens_issued"] == 1


def _untrusted_ca(tmp_path):
    return str(pki.write_public(tmp_path / "other-ca.crt", pki.make_ca("Another bank").certificate_pem()))


@pytest.mark.parametrize(
    ("failure", "step", "words"),
    [
        pytest.param(
            "wrong-secret", "token", ["Invalid Credentials", "Client secret", "active"], id="wrong-secret"
        ),
        pytest.param("ip-not-allowed", "token", ["403", "allowlist"], id="ip-not-allowed"),
        pytest.param("untrusted-ca", "TLS handshake", ["not trusted", "ca_cert"], id="untrusted-ca"),
    ],
)
def test_test_connection_names_the_failing_step_and_the_banks_checklist(
    bankapi_sandbox, connect, tmp_path, failure, step, words
):
    wrong_secret = "wrong-secret-" + secrets.token_hex(8)
    if failure == "wrong-secret":
        hook = connect(password=wrong_secret)
    elif failure == "ip-not-allowed":
        bankapi_sandbox.core.set_allowed_ips(bankapi_sandbox.client_id, ["192.0.2.10"])
        hook = connect()
    else:
        hook = connect(extra={"ca_cert": _untrusted_ca(tmp_path)})

    ok, message = hook.test_connection()

    assert not ok
    assert message.startswith(f"Failed at the {step} step")
    for word in words:
        assert word in message
    assert wrong_secret not in message
    assert bankapi_sandbox.connection["password"] not in message
    assert bankapi_sandbox.counters()["tokens_issued"] == 0


def test_test_connection_reports_a_bad_connection_field_without_raising(bankapi_sandbox, connect):
    ok, message = connect(extra={"X-Api-Key": "header-secret-123456"}).test_connection()

    assert not ok
    assert CONN_ID in message
    assert "X-Api-Key" in message
    assert "header-secret-123456" not in message
    assert bankapi_sandbox.counters()["tls_connections"] == 0


# -- secrets reach Airflow's masker as soon as they exist --------------------------------------------


def test_client_secret_and_token_are_masked(bankapi_sandbox, connect):
    hook = connect()
    token = hook.get_token().access_token
    secret = bankapi_sandbox.connection["password"]

    assert redact(f"secret={secret} token={token}") == "secret=*** token=***"


def test_pfx_password_and_pem_key_text_are_masked(bankapi_sandbox, connect, tmp_path):
    pfx_password = "pfx-" + secrets.token_urlsafe(12)
    key_password = "key-" + secrets.token_urlsafe(12)
    proxy_password = "proxy-" + secrets.token_urlsafe(12)
    client = pki.issue_client_certificate(pki.make_ca("Masking test CA"))
    key_pem = client.private_key_pem(key_password.encode()).decode()
    bundle = base64.b64encode(client.pkcs12(pfx_password.encode())).decode()

    pem_hook = connect(
        "bankapi_pem_text",
        extra={
            "client_cert": client.certificate_pem().decode(),
            "client_private_key": key_pem,
            "client_private_key_password": key_password,
            "proxy": f"http://user:{proxy_password}@127.0.0.1:9",
        },
    )
    pfx_hook = connect(
        "bankapi_pfx_text", pfx=True, extra={"client_pfx_secret": bundle, "client_pfx_password": pfx_password}
    )
    _ = pem_hook.client, pfx_hook.client  # built, nothing sent

    key_body = "".join(line for line in key_pem.splitlines() if not line.startswith("-----"))
    for secret in (
        pfx_password,
        key_password,
        proxy_password,
        key_pem,
        json.dumps(key_pem),
        key_body,
        bundle,
    ):
        assert secret not in str(redact(f"leaked: {secret}")), secret[:12]
    assert "-----BEGIN ENCRYPTED PRIVATE KEY-----" in redact(key_pem.splitlines()[0])  # armour is public


def test_key_text_adds_a_few_patterns_to_the_masker_not_one_per_line(connect):
    # Airflow's masker recompiles one regex of all its patterns at each addition: a pattern per line of a
    # key would cost seconds per task for an RSA-4096 key (52 lines).
    from airflow.sdk._shared.secrets_masker import _secrets_masker
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    client = pki.issue_client_certificate(pki.make_ca("Masker count CA"))
    key_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=4096)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"masker-count"),
        )
        .decode()
    )
    assert len(key_pem.splitlines()) > 50
    before = len(_secrets_masker().patterns)
    _ = connect(
        "bankapi_pem_count",
        extra={
            "client_cert": client.certificate_pem().decode(),
            "client_private_key": key_pem,
            "client_private_key_password": "masker-count",
        },
    ).client  # built, nothing sent
    assert len(_secrets_masker().patterns) - before <= 8


def test_a_token_another_process_left_in_the_host_store_is_masked_when_loaded(
    bankapi_sandbox, connect, cache_home
):
    # "Another process": a plain client (no masker) writing to the same host store this hook reads.
    settings, _ = settings_from_connection(
        bankapi_sandbox.base_url,
        bankapi_sandbox.client_id,
        bankapi_sandbox.connection["password"],
        bankapi_sandbox.connection["extra"],
    )
    with BankingApiClient(settings, token_stores=[HostTokenStore(default_cache_dir())]) as other:
        token = other.get_token().access_token
    assert redact(token) == token  # nobody masked it so far

    assert connect().get_balance("1")["account_id"] == "1"

    assert redact(f"Bearer {token}") == "Bearer ***"
    assert bankapi_sandbox.counters()["tokens_issued"] == 1  # the hook used that token


# -- cache scopes outside a task ---------------------------------------------------------------------


def test_default_scope_shares_the_token_through_the_host_store(bankapi_sandbox, connect, cache_home):
    connect().get_balance("1")

    files = list(cache_home.rglob("*.json"))
    assert len(files) == 1
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert bankapi_sandbox.connection["password"] not in files[0].read_text()


def test_cluster_scope_outside_a_task_falls_back_to_host_with_a_warning(
    bankapi_sandbox, connect, cache_home, caplog
):
    caplog.set_level(logging.WARNING)
    hook = connect(extra={"cache_scope": "cluster"})

    assert hook.get_balance("1")["account_id"] == "1"

    assert "cache_scope=cluster needs a running task" in caplog.text
    assert "falling back to cache_scope=host" in caplog.text
    assert len(list(cache_home.rglob("*.json"))) == 1


@pytest.mark.parametrize(
    ("scope", "tokens", "host_file"),
    [
        pytest.param("off", 2, False, id="off"),
        pytest.param("process", 1, False, id="process"),
        pytest.param("host", 1, True, id="host"),
    ],
)
def test_two_hooks_of_one_process_share_a_token_unless_the_scope_is_off(
    bankapi_sandbox, connect, cache_home, scope, tokens, host_file
):
    first = connect("bankapi_scope_a", extra={"cache_scope": scope})
    second = connect("bankapi_scope_b", extra={"cache_scope": scope})

    first.get_balance("1")
    second.get_balance("2")
    first.get_balance("3")

    assert bankapi_sandbox.counters()["tokens_issued"] == tokens
    assert bool(list(cache_home.rglob("*.json"))) is host_file


@pytest.mark.parametrize(
    ("conn_id", "named"),
    [
        pytest.param("bankapi_prod", "Connection 'bankapi_prod'", id="saved-connection"),
        pytest.param("sjAsXtwD", "This connection", id="test-buttons-temporary-copy"),
    ],
)
def test_a_bad_field_is_reported_under_the_name_the_user_knows(bankapi_sandbox, monkeypatch, conn_id, named):
    conn = bankapi_sandbox.connection
    conn["port"] = 443 if conn["port"] != 443 else 8443
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    ok, message = BankingApiHook(bankapi_conn_id=conn_id).test_connection()

    assert not ok
    assert message.startswith(f"{named}: The Port (")


def test_no_short_value_reaches_airflows_masker_so_no_task_log_says_it_skipped_one(
    bankapi_sandbox, monkeypatch, caplog
):
    from airflow.sdk._shared.secrets_masker.secrets_masker import SecretsMasker

    conn = bankapi_sandbox.connection
    conn["extra"]["proxy"] = "http://egress:pw12@127.0.0.1:3128"  # a password shorter than Airflow masks
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_SHORT", json.dumps(conn))
    monkeypatch.setattr(SecretsMasker, "_has_warned_short_secret", False)  # once per process, as in a task

    with caplog.at_level(logging.WARNING):
        assert BankingApiHook(bankapi_conn_id="bankapi_short").client.settings.transport.proxy

    assert "too short" not in caplog.text


def test_the_hook_makes_the_urls_of_its_sessions_and_refuses_the_token_endpoint(bankapi_sandbox, connect):
    hook = connect()
    url = hook.url("/accounts/9/balance")
    assert url == bankapi_sandbox.base_url.rstrip("/") + "/accounts/9/balance"
    assert hook.base_url.rstrip("/") == bankapi_sandbox.base_url.rstrip("/")
    assert hook.get_conn().get(url, timeout=10).json()["account_id"] == "9"
    with pytest.raises(ConfigurationError):
        hook.url(TOKEN_PATH)  # the token endpoint: never a protected call

"""The sandbox enforces every rule of the contract, seen from plain requests and ssl, TLS 1.2 and 1.3."""

from __future__ import annotations

import csv
import datetime
import io
import json
import socket
import ssl

import pytest
import requests

from bankapi_sandbox.core import CoreError


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def test_negotiates_the_requested_tls_version(sandbox, tls_version):
    context = ssl.create_default_context(cafile=str(sandbox.ca_cert))
    context.load_cert_chain(str(sandbox.client_cert), str(sandbox.client_key))
    port = int(sandbox.base_url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() == f"TLSv{tls_version}"


def test_good_token_then_balance(client, sandbox):
    response = client.token()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert response.headers["Cache-Control"] == "no-store"
    balance = client.balance(body["access_token"])
    assert balance.status_code == 200
    assert balance.json()["account_id"] == "123"
    assert balance.json()["currency"] == "BRL"
    counters = sandbox.counters()
    assert (counters["tokens_issued"], counters["api_requests"], counters["tls_connections"]) == (1, 1, 1)


@pytest.mark.parametrize(
    ("overrides", "status", "phrase"),
    [
        pytest.param({"client_secret": "not-the-secret"}, 401, "Invalid Credentials", id="wrong-secret"),
        pytest.param({"client_id": "nobody"}, 401, "Invalid Credentials", id="unknown-client-id"),
        pytest.param({"grant_type": "password"}, 400, "client_credentials", id="wrong-grant-type"),
        pytest.param({"grant_type": None}, 400, "grant_type", id="grant-type-missing"),
        pytest.param({"client_secret": ""}, 400, "client_secret", id="secret-empty"),
    ],
)
def test_refused_token_requests(client, sandbox, overrides, status, phrase):
    response = client.token(**{k: v for k, v in overrides.items()})
    assert response.status_code == status
    assert phrase in response.text
    assert sandbox.counters()["tokens_issued"] == 0


def test_inactive_credential_is_invalid_credentials(client, sandbox):
    sandbox.core.deactivate(sandbox.client_id)
    response = client.token()
    assert (response.status_code, response.json()["message"]) == (401, "Invalid Credentials")
    sandbox.core.activate(sandbox.client_id)
    assert client.token().status_code == 200
    assert sandbox.counters()["token_refused"] == {"invalid_credentials": 1}


def test_form_encoded_body_is_refused_with_a_clear_message(client, sandbox):
    connection = sandbox.connection
    form = {"client_id": connection["login"], "client_secret": connection["password"]}
    form["grant_type"] = "client_credentials"
    response = client.session.post(f"{sandbox.base_url}/auth/token-v2", data=form, timeout=10)
    assert response.status_code == 400
    assert "must be JSON" in response.json()["error_description"]
    assert "form-encoded" in response.json()["error_description"]
    assert sandbox.counters()["token_refused"] == {"invalid_request": 1}


def test_certificate_not_bound_is_invalid_client_certificate(client_factory, sandbox):
    unbound = sandbox.issue_client_certificate("unbound")
    response = client_factory(unbound.certificate, unbound.private_key).token()
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid Client Certificate"
    assert sandbox.counters()["token_refused"] == {"invalid_client_certificate": 1}


def test_ip_not_on_allowlist_is_forbidden(client, sandbox):
    sandbox.core.set_allowed_ips(sandbox.client_id, ["10.0.0.0/8", "192.0.2.7"])
    response = client.token()
    assert (response.status_code, response.json()["message"]) == (403, "Forbidden")
    sandbox.core.set_allowed_ips(sandbox.client_id, ["127.0.0.0/8"])
    assert client.token().status_code == 200


def test_checks_run_in_the_banks_order(client_factory, sandbox):
    # Everything wrong at once: the credential is judged first, then the certificate, then the IP.
    unbound = sandbox.issue_client_certificate("unbound")
    stranger = client_factory(unbound.certificate, unbound.private_key)
    sandbox.core.set_allowed_ips(sandbox.client_id, [])
    assert stranger.token(client_secret="wrong").json()["message"] == "Invalid Credentials"
    assert stranger.token().json()["message"] == "Invalid Client Certificate"
    assert client_factory().token().json()["message"] == "Forbidden"


@pytest.mark.parametrize(
    "which",
    [
        pytest.param("foreign", id="other-ca"),
        pytest.param("expired", id="expired"),
        pytest.param("none", id="no-certificate"),
    ],
)
def test_bad_client_certificates_fail_the_tls_handshake(
    client_factory, sandbox, foreign_identity, eventually, which
):
    if which == "foreign":
        identity = foreign_identity
    elif which == "expired":
        files = sandbox.issue_client_certificate(
            "expired",
            not_before=_now() - datetime.timedelta(days=30),
            not_after=_now() - datetime.timedelta(days=1),
        )
        identity = (files.certificate, files.private_key)
    else:
        identity = (None, None)
    with pytest.raises(requests.exceptions.ConnectionError):
        client_factory(*identity).token()
    assert eventually(lambda: sandbox.counters()["tls_handshake_failures"] >= 1)
    assert sandbox.counters()["tokens_issued"] == 0


def test_protected_call_needs_a_bearer_token(client):
    response = client.balance(None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_used_with_another_certificate_is_invalid_token(client_factory, sandbox):
    second = sandbox.issue_client_certificate("client2", bind=True)
    token = client_factory().access_token()
    response = client_factory(second.certificate, second.private_key).balance(token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "another client certificate" in response.json()["error_description"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("action", "description"),
    [
        pytest.param(lambda s: s.expire_tokens(), "expired", id="expired"),
        pytest.param(lambda s: s.revoke_tokens(), "revoked", id="revoked"),
        pytest.param(
            lambda s: s.core.deactivate(s.client_id), "no longer active", id="credential-deactivated"
        ),
        pytest.param(
            lambda s: s.core.unbind(s.client_id, s.client_cert), "no longer bound", id="certificate-unbound"
        ),
    ],
)
def test_token_stops_working(client, sandbox, action, description):
    token = client.access_token()
    assert client.balance(token).status_code == 200
    action(sandbox)
    response = client.balance(token)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")
    assert description in response.json()["error_description"]


def test_token_expires_on_the_clock(client, sandbox, eventually):
    sandbox.set_token_lifetime(1)
    response = client.token()
    assert response.json()["expires_in"] == 1
    token = response.json()["access_token"]
    assert eventually(lambda: client.balance(token).status_code == 401, timeout=5)
    assert "expired" in client.balance(token).json()["error_description"]


def test_unknown_token_is_invalid_token(client):
    response = client.balance("made-up-token")
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")


def test_rotation_two_active_certificates_both_work(client_factory, sandbox):
    second = sandbox.issue_client_certificate("client2", bind=True)
    old, new = client_factory(), client_factory(second.certificate, second.private_key)
    for client in (old, new):
        assert client.balance(client.access_token()).status_code == 200
    # Rotation done: the old certificate is unbound, the new one keeps working.
    sandbox.core.unbind(sandbox.client_id, sandbox.client_cert)
    assert old.token().json()["message"] == "Invalid Client Certificate"
    assert new.balance(new.access_token()).status_code == 200


def test_third_certificate_is_refused(sandbox):
    sandbox.issue_client_certificate("client2", bind=True)
    with pytest.raises(CoreError, match="already has 2 active certificates"):
        sandbox.issue_client_certificate("client3", bind=True)
    assert len(sandbox.core.require(sandbox.client_id).certificates) == 2


def test_illustrations_paginate_with_a_cursor(client, sandbox):
    token = client.access_token()
    accounts = client.get("/accounts", token)
    assert accounts.headers["X-Sandbox-Illustration"] == "true"
    assert "Sandbox illustration" in accounts.json()["sandbox_illustration"]
    assert accounts.json()["items"][0]["account_id"] == "123"
    seen, cursor, pages = [], None, 0
    while True:
        page = client.get(
            "/accounts/123/transactions", token, limit=10, **({"cursor": cursor} if cursor else {})
        )
        assert page.status_code == 200
        seen += [item["transaction_id"] for item in page.json()["items"]]
        pages += 1
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 25
    assert pages == -(-len(seen) // 10)
    assert client.get("/accounts/123/transactions", token, limit=500).status_code == 400
    assert client.get("/accounts/123/transactions", token, cursor="bogus").status_code == 400



def test_the_statement_illustration_is_csv_sent_as_it_is(client):
    token = client.access_token()
    statement = client.get("/accounts/123/statement.csv", token)
    assert statement.status_code == 200
    assert statement.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert statement.headers["X-Sandbox-Illustration"] == "true"
    rows = list(csv.DictReader(io.StringIO(statement.content.decode())))
    assert list(rows[0]) == ["date", "transaction_id", "type", "amount", "description"]
    transactions = client.get("/accounts/123/transactions", token, limit=5).json()["items"]
    assert rows[:5] == [{key: str(value) for key, value in item.items()} for item in transactions]
    assert client.get("/accounts/123/statement.csv", None).status_code == 401
    refused = client.session.get(
        f"{client.sandbox.base_url}/accounts/123/statement.csv",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=10,
    )
    assert refused.status_code == 406  # content negotiation: the statement is CSV only

@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/accounts/123/nothing", 404, id="unknown-resource"),
        pytest.param("DELETE", "/accounts/123/balance", 405, id="wrong-method"),
        pytest.param("GET", "/auth/token-v2", 405, id="token-with-get"),
    ],
)
def test_other_requests_get_json_errors(client, sandbox, method, path, status):
    response = client.session.request(method, f"{sandbox.base_url}{path}", timeout=10)
    assert response.status_code == status
    assert response.json()["status"] == status


def test_balance_is_deterministic_per_account(client, sandbox):
    token = client.access_token()
    first, again, other = (client.balance(token, a).json() for a in ("123", "123", "456"))
    assert first == again
    assert first["available"] != other["available"]


def test_keep_alive_serves_many_requests_on_one_connection(client, sandbox):
    token = client.access_token()
    for _ in range(20):
        assert client.balance(token).status_code == 200
    assert sandbox.counters()["tls_connections"] == 1


def test_connection_close_is_announced_and_honoured(client, sandbox):
    token = client.access_token()
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    for _ in range(30):
        response = client.session.get(f"{sandbox.base_url}/accounts/123/balance", headers=headers, timeout=10)
        assert response.status_code == 200
        # Unannounced, a closing connection goes back to the client's pool and loses the next request.
        assert response.headers["Connection"] == "close"
    # The first call reuses the token's connection; each of the 29 others needs a new one.
    assert sandbox.counters()["tls_connections"] == 30


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        pytest.param(b"OPTIONS /public/gw_banking/v1/accounts HTTP/1.1", 501, id="unsupported-method"),
        pytest.param(b"GET /public/gw_banking/v1/accounts extra HTTP/1.1", 400, id="malformed"),
    ],
)
def test_protocol_errors_are_json_too(sandbox, request_line, status):
    context = ssl.create_default_context(cafile=str(sandbox.ca_cert))
    context.load_cert_chain(str(sandbox.client_cert), str(sandbox.client_key))
    port = int(sandbox.base_url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["status"] == status

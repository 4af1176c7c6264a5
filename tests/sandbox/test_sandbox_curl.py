"""The bank's own documented curl commands against the sandbox: PEM and PFX, TLS 1.2 and 1.3.

Each command is the bank's example, unchanged but for the host and the file names.
"""

from __future__ import annotations

import datetime

import pytest

VARIANTS = [pytest.param("pem", id="pem"), pytest.param("pfx", id="pfx")]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.mark.parametrize("variant", VARIANTS)
def test_documented_token_and_balance(curl, sandbox, variant):
    token = curl.token(variant).body
    assert (token["token_type"], token["expires_in"]) == ("Bearer", 3600)
    balance = curl.balance(token["access_token"]).body
    assert balance["account_id"] == "123"
    assert sandbox.counters()["tokens_issued"] == 1


def test_token_from_pfx_serves_balance_over_pfx_and_pem(curl):
    # The PFX holds the same certificate as client.crt: the token is bound to the certificate,
    # not to the file format it was loaded from.
    token = curl.token_pfx().body["access_token"]
    assert curl.balance_pfx(token).body["account_id"] == "123"
    assert curl.balance(token).body["account_id"] == "123"


@pytest.mark.parametrize("variant", VARIANTS)
def test_wrong_secret(curl, variant):
    body = curl.token(variant, body=curl.body(client_secret="seu-client-secret")).body
    assert (body["status"], body["message"]) == (401, "Invalid Credentials")


@pytest.mark.parametrize("variant", VARIANTS)
def test_inactive_credential(curl, sandbox, variant):
    sandbox.core.deactivate(sandbox.client_id)
    assert curl.token(variant).body["message"] == "Invalid Credentials"


@pytest.mark.parametrize("variant", VARIANTS)
def test_ip_not_allowed(curl, sandbox, variant):
    sandbox.core.set_allowed_ips(sandbox.client_id, ["203.0.113.0/24"])
    body = curl.token(variant).body
    assert (body["status"], body["message"]) == (403, "Forbidden")


def test_certificate_not_bound(curl, sandbox):
    sandbox.issue_client_certificate("unbound")
    body = curl.token_pem("unbound.crt", "unbound.key").body
    assert (body["status"], body["message"]) == (401, "Invalid Client Certificate")


def test_pfx_with_wrong_password_never_reaches_the_bank(curl, sandbox):
    result = curl.token_pfx(password="senha-do-pfx")
    assert result.returncode != 0
    assert result.stdout == ""
    assert sandbox.counters()["tls_connections"] == 0


@pytest.mark.parametrize(
    "which", [pytest.param("foreign", id="other-ca"), pytest.param("expired", id="expired")]
)
def test_bad_certificate_fails_the_handshake(curl, sandbox, foreign_identity, eventually, which):
    if which == "foreign":
        cert, key = (str(path) for path in foreign_identity)
    else:
        sandbox.issue_client_certificate(
            "expired",
            not_before=_now() - datetime.timedelta(days=30),
            not_after=_now() - datetime.timedelta(days=1),
        )
        cert, key = "expired.crt", "expired.key"
    result = curl.token_pem(cert, key)
    assert result.returncode != 0, result.stdout
    assert result.stdout == ""
    assert eventually(lambda: sandbox.counters()["tls_handshake_failures"] == 1)


def test_no_certificate_fails_the_handshake(curl, sandbox, eventually):
    result = curl.run(
        "-X", "POST", f"{sandbox.base_url}/auth/token-v2",
        "--cacert", "ca.crt",
        "-H", "Content-Type: application/json",
        "-d", curl.body(),
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert eventually(lambda: sandbox.counters()["tls_handshake_failures"] == 1)
    assert sandbox.counters()["tokens_issued"] == 0


def test_form_encoded_body_refused(curl, sandbox):
    connection = sandbox.connection
    form = f"client_id={connection['login']}&client_secret={connection['password']}"
    form += "&grant_type=client_credentials"
    # curl's -d without the JSON header sends a form, as most OAuth libraries do by default.
    result = curl.run(
        "-X", "POST", f"{sandbox.base_url}/auth/token-v2",
        "--cert", "client.crt", "--key", "client.key", "--cacert", "ca.crt",
        "-d", form,
    )  # fmt: skip
    assert result.body["status"] == 400
    assert "must be JSON" in result.body["error_description"]


def test_token_with_another_certificate(curl, sandbox):
    sandbox.issue_client_certificate("client2", bind=True)
    token = curl.token_pem().body["access_token"]
    body = curl.balance(token, "client2.crt", "client2.key").body
    assert (body["status"], body["error"]) == (401, "invalid_token")


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(lambda s: s.expire_tokens(), id="expired"),
        pytest.param(lambda s: s.revoke_tokens(), id="revoked"),
    ],
)
def test_expired_or_revoked_token(curl, sandbox, action):
    token = curl.token_pem().body["access_token"]
    action(sandbox)
    body = curl.balance(token).body
    assert (body["status"], body["error"]) == (401, "invalid_token")


def test_rotation_both_certificates_work_and_a_third_is_refused(curl, sandbox):
    from bankapi_sandbox.core import CoreError

    sandbox.issue_client_certificate("client2", bind=True)
    for cert, key in (("client.crt", "client.key"), ("client2.crt", "client2.key")):
        token = curl.token_pem(cert, key).body["access_token"]
        assert curl.balance(token, cert, key).body["account_id"] == "123"
    with pytest.raises(CoreError, match="unbind one first"):
        sandbox.issue_client_certificate("client3", bind=True)
    assert curl.token_pem("client3.crt", "client3.key").body["message"] == "Invalid Client Certificate"

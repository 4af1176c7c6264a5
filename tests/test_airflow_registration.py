"""The provider as Airflow 3.3 sees it: the CLI, the API server, the connection form, masking, Test.

Every test here runs a real Airflow (CLI subprocesses, ``airflow api-server``), against the session's
AIRFLOW_HOME (tests/airflow_harness.py).
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from airflow_harness import run_airflow

from airflow_provider_bankapi.client.fields import EXTRA_KEYS

pytestmark = pytest.mark.airflow

HOOK_CLASS = "airflow_provider_bankapi.hooks.bankapi.BankingApiHook"

# Stand-in values for every extra, with our field names. Nothing real: the "PEM" texts are labels.
FAKE_PEM_KEY = "-----BEGIN PRIVATE KEY-----\nNOT-A-REAL-KEY-just-a-test-label\n-----END PRIVATE KEY-----\n"
FAKE_PEM_CERT = "-----BEGIN CERTIFICATE-----\nNOT-A-REAL-CERTIFICATE\n-----END CERTIFICATE-----\n"
STAND_IN_EXTRA = {
    "client_cert": FAKE_PEM_CERT,
    "client_private_key": FAKE_PEM_KEY,
    "client_private_key_password": "stand-in-key-passphrase",
    "client_pfx_secret": "c3RhbmQtaW4tcGtjczEyLWJ1bmRsZQ==",
    "client_pfx_password": "stand-in-pfx-password",
    "ca_cert": "/etc/bank/ca.crt",
    "auth_endpoint": "/auth/token-v2",
    "cache_scope": "cluster",
    "refresh_margin": 300,
    "timeout": 30,
    "max_retries": 3,
    "max_response_bytes": 16777216,
    "interaction_id_header": "x-fapi-interaction-id",
    "proxy": "http://egress-user:egress-password@proxy.internal:3128",
}
SECRET_EXTRAS = {"client_private_key", "client_private_key_password", "client_pfx_secret",
                 "client_pfx_password", "proxy"}
# What must never come back from Airflow: the secret values above and the client secret.
SECRET_VALUES = ("NOT-A-REAL-KEY", "stand-in-key-passphrase", "c3RhbmQtaW4t", "stand-in-pfx-password",
                 "egress-password", "stand-in-client-secret")
STAND_IN_CONNECTION = {
    "conn_type": "bankapi",
    "host": "https://api.bancodigital.com/public/gw_banking/v1",
    "login": "stand-in-client-id",
    "password": "stand-in-client-secret",
    "extra": STAND_IN_EXTRA,
}


def assert_no_secret(text):
    leaked = [secret for secret in SECRET_VALUES if secret in text]
    assert not leaked


def test_stand_in_extra_covers_every_field():
    assert set(STAND_IN_EXTRA) == set(EXTRA_KEYS)


def test_providers_list_shows_the_package():
    result = run_airflow("providers", "list", "--output", "json", check=True)
    providers = {entry["package_name"]: entry for entry in json.loads(result.stdout)}
    ours = providers["airflow-provider-bankapi"]
    assert ours["version"] == importlib.metadata.version("airflow-provider-bankapi")


def test_providers_hooks_shows_bankapi():
    # Airflow imports the hook class for this listing: it fails if hooks/bankapi.py does not import.
    result = run_airflow("providers", "hooks", "--output", "json", check=True)
    hooks = {entry["connection_type"]: entry for entry in json.loads(result.stdout)}
    assert hooks["bankapi"]["class"] == HOOK_CLASS
    assert hooks["bankapi"]["package_name"] == "airflow-provider-bankapi"


def test_connection_form_metadata(airflow_api_server):
    # What the React connection form of Airflow 3.3 is drawn from.
    hooks = airflow_api_server.get_json("/ui/connections/hook_meta")
    (ours,) = [hook for hook in hooks if hook["connection_type"] == "bankapi"]
    assert ours["hook_name"] == "Banking API"
    assert ours["hook_class_name"] == HOOK_CLASS
    standard = ours["standard_fields"]
    assert standard["host"] == {
        "hidden": False,
        "title": "Base URL",
        "placeholder": "https://api.bancodigital.com/public/gw_banking/v1",
    }
    assert (standard["login"]["title"], standard["password"]["title"]) == ("Client ID", "Client secret")
    assert standard["url_schema"]["hidden"] is True
    assert standard["port"]["hidden"] is False
    extra = ours["extra_fields"]
    assert list(extra) == list(EXTRA_KEYS)
    assert extra["cache_scope"]["value"] == "host"
    assert extra["cache_scope"]["schema"]["enum"] == ["host", "cluster", "process", "off"]
    assert extra["client_private_key"]["schema"]["format"] == "multiline"
    assert extra["client_pfx_password"]["schema"]["format"] == "password"


def create_with_cli(server, conn_id):
    run_airflow("connections", "add", conn_id, "--conn-json", json.dumps(STAND_IN_CONNECTION), check=True)


def create_with_api(server, conn_id):
    body = {**STAND_IN_CONNECTION, "connection_id": conn_id, "extra": json.dumps(STAND_IN_EXTRA)}
    response = server.request("POST", "/api/v2/connections", json=body)
    assert response.status_code == 201, response.text
    assert_no_secret(response.text)  # the creation answer is masked as well


@pytest.mark.parametrize(
    ("create", "conn_id"),
    [
        pytest.param(create_with_cli, "bankapi_masking_cli", id="created-by-cli"),
        pytest.param(create_with_api, "bankapi_masking_api", id="created-by-api"),
    ],
)
def test_secret_extras_come_back_masked_from_the_api(airflow_api_server, create, conn_id):
    create(airflow_api_server, conn_id)

    one = airflow_api_server.get_json(f"/api/v2/connections/{conn_id}")
    listed = airflow_api_server.get_json("/api/v2/connections?limit=100")
    (in_list,) = [conn for conn in listed["connections"] if conn["connection_id"] == conn_id]

    for answer in (one, in_list):
        assert answer["password"] == "***"
        assert answer["login"] == "stand-in-client-id"
        extra = json.loads(answer["extra"])
        assert set(extra) == set(EXTRA_KEYS)
        for key, value in extra.items():
            if key in SECRET_EXTRAS:
                assert value == "***", key
            else:
                assert value == STAND_IN_EXTRA[key], key
        assert_no_secret(json.dumps(answer))


def test_connections_test_is_refused_while_disabled():
    result = run_airflow(
        "connections", "test", "bankapi_default",
        env={"AIRFLOW__CORE__TEST_CONNECTION": "Disabled"},
        connections={"bankapi_default": STAND_IN_CONNECTION},
    )
    assert result.returncode == 1
    assert "Testing connections is disabled" in result.stdout


def test_connections_test_succeeds_against_the_sandbox(bankapi_sandbox):
    result = run_airflow(
        "connections", "test", "bankapi_sandbox", connections={"bankapi_sandbox": bankapi_sandbox.connection}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout
    # A real probe: the hook fetched a token from the bank.
    assert bankapi_sandbox.counters()["tokens_issued"] == 1


def test_connections_test_reports_the_failure_without_the_secret(bankapi_sandbox):
    wrong_secret = "wrong-client-secret-0123456789"
    connection = {**bankapi_sandbox.connection, "password": wrong_secret}
    result = run_airflow(
        "connections", "test", "bankapi_sandbox", connections={"bankapi_sandbox": connection}
    )
    assert result.returncode == 1
    assert "Connection failed!" in result.stdout
    assert "Invalid Credentials" in result.stdout  # the bank's reason...
    assert "Client ID (login) and Client secret (password)" in result.stdout  # ...and its checklist
    assert wrong_secret not in result.stdout + result.stderr
    assert bankapi_sandbox.counters()["token_refused"]  # refused by the bank, not before reaching it


def test_test_button_runs_the_hook_in_the_api_server(airflow_api_server, bankapi_sandbox):
    # The UI's "Test" button: POST /api/v2/connections/test, run in the API server's process.
    body = {**bankapi_sandbox.connection, "connection_id": "bankapi_button"}
    body["extra"] = json.dumps(body["extra"])
    response = airflow_api_server.request("POST", "/api/v2/connections/test", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] is True, response.json()["message"]
    assert bankapi_sandbox.counters()["tokens_issued"] == 1

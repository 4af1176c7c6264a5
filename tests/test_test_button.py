"""The UI's Test button on a *saved* connection, as Airflow 3.3.2's connection list sends it.

The row's button posts the connection as the list shows it: the secrets masked (``***``, which tells
the API server to reuse the stored ones) and the port as ``Number(port)``, so 0 when none is stored.
The server reuses stored secrets only when host and port match the stored connection, so every
connection here is saved with its port, as ``sandbox init`` writes it and the README tells a user.
The browser drives the real button in ``tests/e2e/test_ui_connection_form.py``.
"""

from __future__ import annotations

import json

import pytest
from airflow_harness import run_airflow

from airflow_provider_bankapi.errors import HINT_INVALID_CREDENTIALS

pytestmark = pytest.mark.airflow

WRONG_SECRET = "wrong-client-secret-5f0c1e77"


def press_test_button(server, conn_id):
    """What the row's Test button of Airflow 3.3.2 posts, built from the connection list it shows."""
    listed = server.get_json("/api/v2/connections?limit=1000")
    (row,) = [conn for conn in listed["connections"] if conn["connection_id"] == conn_id]
    body = {
        "connection_id": conn_id,
        "conn_type": row["conn_type"],
        "description": row["description"] or "",
        "extra": row["extra"] or "{}",
        "host": row["host"] or "",
        "login": row["login"] or "",
        "password": row["password"] or "",
        "port": int(row["port"] or 0),  # the UI's Number(port): null becomes 0
        "schema": row["schema"] or "",
    }
    assert body["password"] == "***"  # the button never holds the stored secret
    response = server.request("POST", "/api/v2/connections/test", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def create_with_api(server, conn_id, connection):
    body = {**connection, "connection_id": conn_id, "extra": json.dumps(connection["extra"])}
    response = server.request("POST", "/api/v2/connections", json=body)
    assert response.status_code == 201, response.text


def create_from_the_sandbox_file(server, conn_id, connection):
    # What a user does with the file `sandbox init` wrote: connection.json as it is.
    run_airflow("connections", "add", conn_id, "--conn-json", json.dumps(connection), check=True)


@pytest.mark.parametrize(
    ("create", "conn_id"),
    [
        pytest.param(create_with_api, "bankapi_button_api", id="created-through-the-rest-api"),
        pytest.param(create_from_the_sandbox_file, "bankapi_button_init", id="created-by-sandbox-init"),
    ],
)
def test_test_button_succeeds_on_a_saved_connection(airflow_api_server, bankapi_sandbox, create, conn_id):
    assert bankapi_sandbox.connection["port"]  # written by `sandbox init`, rewritten by `serve`
    create(airflow_api_server, conn_id, bankapi_sandbox.connection)

    result = press_test_button(airflow_api_server, conn_id)

    assert result["status"] is True, result["message"]
    assert result["message"].startswith("Connected over TLS")
    assert bankapi_sandbox.counters()["tokens_issued"] == 1  # the stored secrets reached the bank


def test_test_button_shows_the_banks_reason_for_a_wrong_secret(airflow_api_server, bankapi_sandbox):
    create_with_api(
        airflow_api_server, "bankapi_button_wrong", {**bankapi_sandbox.connection, "password": WRONG_SECRET}
    )

    result = press_test_button(airflow_api_server, "bankapi_button_wrong")

    assert result["status"] is False
    assert "Failed at the token step" in result["message"]
    assert "Invalid Credentials" in result["message"]
    assert HINT_INVALID_CREDENTIALS in result["message"]
    assert WRONG_SECRET not in result["message"]
    assert bankapi_sandbox.counters()["token_refused"]


def test_test_button_names_this_connection_not_airflows_temporary_id(airflow_api_server, bankapi_sandbox):
    # The Port says 443 while the Base URL names the sandbox's own port: a field error, before any request.
    create_with_api(airflow_api_server, "bankapi_button_port", {**bankapi_sandbox.connection, "port": 443})

    result = press_test_button(airflow_api_server, "bankapi_button_port")

    assert result["status"] is False
    assert result["message"].startswith("This connection: The Port (443) differs"), result["message"]
    assert bankapi_sandbox.counters()["tls_connections"] == 0

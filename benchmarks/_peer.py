"""The http provider (apache-airflow-providers-http, the ``bench`` extra) used as its users use it
against this bank: an ``http`` connection with the client certificate in its ``cert`` extra (one file
holding certificate and key: the only form it takes) and the bank's CA in ``verify``, a token fetched
with a JSON POST in each task, then ``HttpHook.run`` with a Bearer header.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.http.hooks.http import HttpHook

    from bankapi_sandbox import Sandbox

HTTP_CONN_ID = "bank_http"


def use_http_connection(sandbox: Sandbox, conn_id: str = HTTP_CONN_ID, **extra: Any) -> str:
    """Define the ``http`` connection to the sandbox as ``AIRFLOW_CONN_<ID>``; return its id.

    The certificate and key go into one 0600 file inside the sandbox's own (private, temporary) directory.
    """
    combined = sandbox.dir / "http-provider-client.pem"
    if not combined.exists():
        descriptor = os.open(combined, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(sandbox.client_cert.read_text() + sandbox.client_key.read_text())
    connection = sandbox.connection
    extras = {"cert": str(combined), "verify": str(sandbox.ca_cert), **extra}
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {
            "conn_type": "http",
            "host": connection["host"],
            "login": connection["login"],
            "password": connection["password"],
            "extra": extras,
        }
    )
    return conn_id


def fetch_token(conn_id: str = HTTP_CONN_ID) -> str:
    """A task's token: the client credentials POSTed as JSON (the bank's format) with ``HttpHook.run``."""
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="POST", http_conn_id=conn_id)
    connection = hook.get_connection(conn_id)
    body = {
        "client_id": connection.login,
        "client_secret": connection.password,
        "grant_type": "client_credentials",
    }
    return str(hook.run("/auth/token-v2", json=body).json()["access_token"])


def balance_hook(token: str, conn_id: str = HTTP_CONN_ID) -> HttpHook:
    """An ``HttpHook`` for GETs with the Bearer token: the connection's login would otherwise be sent as
    Basic auth (its default ``auth_type``), overriding an ``Authorization`` header."""
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    class BearerAuth(requests.auth.AuthBase):
        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            request.headers["Authorization"] = f"Bearer {token}"
            return request

    return HttpHook(method="GET", http_conn_id=conn_id, auth_type=lambda *_: BearerAuth())


def get_balance(hook: HttpHook, account_id: str) -> Any:
    return hook.run(f"/accounts/{account_id}/balance").json()

"""running() and the pytest fixture: provisioning, reuse of a directory, and nothing left behind."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from bankapi_sandbox import running

pytestmark = pytest.mark.slow  # sandbox banks started and stopped

BALANCE = "/accounts/123/balance"


def _port(base_url: str) -> int:
    return int(base_url.split(":")[2].split("/")[0])


def test_stop_cuts_idle_and_hanging_connections_and_leaves_nothing_behind():
    before = set(threading.enumerate())
    outcome: list[BaseException] = []
    with running() as sandbox:
        directory, port = sandbox.dir, _port(sandbox.base_url)
        idle = requests.Session()
        idle.trust_env = False
        idle.verify, idle.cert = str(sandbox.ca_cert), (str(sandbox.client_cert), str(sandbox.client_key))
        body = {"client_id": sandbox.client_id, "client_secret": sandbox.connection["password"]}
        token = idle.post(
            f"{sandbox.base_url}/auth/token-v2", json={**body, "grant_type": "client_credentials"}
        )
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert idle.get(f"{sandbox.base_url}{BALANCE}", headers=auth).status_code == 200  # stays open, idle

        sandbox.inject_fault(BALANCE, "hang")

        def hang() -> None:
            try:
                idle.get(f"{sandbox.base_url}{BALANCE}", headers=auth, timeout=60)
            except requests.exceptions.RequestException as exc:
                outcome.append(exc)

        waiting = threading.Thread(target=hang)
        waiting.start()
        while sandbox.counters()["faults_served"].get("hang") != 1:
            waiting.join(0.01)
    # Leaving the block released the hanging request at once (not after HANG_LIMIT_SECONDS).
    waiting.join(30)
    assert not waiting.is_alive()
    assert isinstance(outcome[0], requests.exceptions.ConnectionError)
    idle.close()
    assert set(threading.enumerate()) == before
    assert not directory.exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_an_existing_directory_is_reused_and_kept(tmp_path):
    with running(tmp_path) as first:
        login, first_url = first.client_id, first.base_url
        assert (tmp_path / "sandbox.json").exists()
    with running(tmp_path, expires_in=60) as second:
        assert second.client_id == login  # same provisioning
        assert second.connection["host"] == second.base_url  # rewritten for the new port
        assert second.settings()["token_lifetime"] == 60
    assert first_url.endswith("/public/gw_banking/v1")
    assert (tmp_path / "ca.crt").exists()
    assert not (tmp_path / "sandbox.json").exists()


def test_fixture_yields_the_handle(bankapi_sandbox):
    connection = bankapi_sandbox.connection
    assert connection["host"] == bankapi_sandbox.base_url
    assert connection["conn_type"] == "bankapi"
    assert bankapi_sandbox.connection_pfx["extra"]["client_pfx_secret"] == str(bankapi_sandbox.client_pfx)
    assert bankapi_sandbox.counters()["tokens_issued"] == 0
    assert "password" not in repr(bankapi_sandbox)
    assert connection["password"] not in repr(bankapi_sandbox)


def test_pytest_loads_the_plugin_once(pytestconfig):
    from bankapi_sandbox import pytest_plugin

    registered = [p for p in pytestconfig.pluginmanager.get_plugins() if p is pytest_plugin]
    assert len(registered) == 1

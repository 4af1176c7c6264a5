"""One call goes down the layers once and comes back up once: no loop from a lower layer back into an
upper one, but for the one secret-masking callback (each new token to Airflow's masker). Traced for real
(``benchmarks/call_path.py``'s profiler): a cold ``hook.get_balance`` against the sandbox, the token
fetched, the identity loaded, the host token store written.
"""

from __future__ import annotations

import pytest

from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from benchmarks.call_path import trace

CONN_ID = "bankapi_call_path"


@pytest.fixture
def hook(bankapi_sandbox, airflow_connection, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # a cold host store of its own
    airflow_connection(CONN_ID, bankapi_sandbox.connection)
    return BankingApiHook(bankapi_conn_id=CONN_ID)


def test_a_cold_balance_reenters_no_module_but_for_the_maskers_callback(bankapi_sandbox, hook):
    figures = trace(lambda: hook.get_balance("123"))

    assert bankapi_sandbox.counters()["tokens_issued"] == 1  # cold: the token path was traced too
    assert dict(figures["reentries"]) == {"hooks.bankapi (from client.redaction)": 1}
    modules = figures["modules"]
    # Down from the hook to the transport: the layers the line crosses were all entered.
    assert {
        "hooks.bankapi",
        "client.api",
        "client.auth",
        "client.tokens.cache",
        "client.transport.adapter",
    } <= set(modules)

"""Tokens across task runs, with real task processes: DAGs run through the LocalExecutor (one process per task
instance) against the session's API server, calling the sandbox bank.

What is proved here (issue 4, "Done when"):

- 20 mapped task instances in separate processes, then 5 more in a second DAG run: 1 token (default
  ``host`` scope);
- ``cluster`` scope: the token lands in a ``bankapi_token_*`` Variable that the API masks; two "worker
  machines" (two task processes with different ``XDG_CACHE_HOME``, so two separate host stores) run one
  after the other: 1 token; all at once on a cold start: 1 token too (one host's renewal claim holds,
  the other waits for its token);
- no client_secret, token, private key or password in the task logs or XComs, although the tasks print them.

The figures are printed (``pytest -s``) for BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from airflow_harness import run_dag
from cryptography import x509

from airflow_provider_bankapi.client.tokens.values import cache_key
from airflow_provider_bankapi.hooks.variable_store import claim_name, variable_name

pytestmark = pytest.mark.airflow

DAG_FILE = Path(__file__).parent / "dags" / "token_sharing.py"
MAPPED = 20
AGAIN = 5  # task runs of the second DAG run


def _text_connection(sandbox, **extra):
    """The sandbox's connection with the certificate and private key pasted as PEM text."""
    connection = sandbox.connection
    return {
        **connection,
        "extra": {
            "client_cert": sandbox.client_cert.read_text(),
            "client_private_key": sandbox.client_key.read_text(),
            "ca_cert": str(sandbox.ca_cert),
            **extra,
        },
    }


def _host_tokens(cache_home: Path) -> list[str]:
    return [json.loads(path.read_text())["access_token"] for path in cache_home.rglob("*.json")]


def _forbidden(sandbox, tokens) -> list[str]:
    """Every secret a task could reach: none may appear in a log or an XCom."""
    key_pem = sandbox.client_key.read_text()
    key_lines = [line for line in key_pem.splitlines() if line and not line.startswith("-----")]
    values = [
        sandbox.connection["password"],
        sandbox.connection_pfx["extra"]["client_pfx_password"],
        key_pem.strip(),
        json.dumps(key_pem)[1:-1],
        *key_lines,
        *tokens,
    ]
    assert all(len(value) >= 16 for value in values)  # long enough that a hit is never a coincidence
    return values


def _scan(run, task_id, map_indexes, forbidden):
    """Each task log shows the masked prints; no log and no XCom of the run holds a secret."""
    for index in map_indexes:
        log = run.task_log(task_id, map_index=index)
        assert "token used: ***" in log
        assert "client_secret: ***" in log
        for secret in forbidden:
            assert secret not in log, f"{task_id}[{index}] log leaks {secret[:6]}..."
    xcoms = json.dumps({str(key): value for key, value in run.xcoms().items()}, default=str)
    for secret in forbidden:
        assert secret not in xcoms


def _cache_key(sandbox) -> str:
    certificate = x509.load_pem_x509_certificate(sandbox.client_cert.read_bytes())
    fingerprint = certificate.fingerprint(certificate.signature_hash_algorithm).hex()
    return cache_key(
        sandbox.base_url + "/auth/token-v2", sandbox.client_id, fingerprint, sandbox.connection["password"]
    )


def _variable_name(sandbox) -> str:
    return variable_name(_cache_key(sandbox))


def test_twenty_task_processes_and_a_second_run_share_one_token(
    bankapi_sandbox, airflow_api_server, tmp_path
):
    cache_home = tmp_path / "worker-cache"
    env = {"XDG_CACHE_HOME": str(cache_home)}
    started = time.monotonic()

    first = run_dag(
        DAG_FILE,
        "bankapi_token_sharing",
        connections={"bankapi_default": _text_connection(bankapi_sandbox)},
        env=env,
        use_executor=True,
    )
    after_first = bankapi_sandbox.counters()["tokens_issued"]
    # A second run, with the PKCS#12 form of the same certificate: the same credential, the same token.
    second = run_dag(
        DAG_FILE,
        "bankapi_token_sharing",
        connections={"bankapi_default": bankapi_sandbox.connection_pfx},
        env=env,
        conf={"accounts": AGAIN},
        use_executor=True,
    )
    elapsed = time.monotonic() - started

    assert (first.state, second.state) == ("success", "success")
    runs = ((first, MAPPED), (second, AGAIN))
    results = [run.xcom("balance", map_index=index) for run, count in runs for index in range(count)]
    assert [result["account_id"] for result in results] == [str(i) for _, count in runs for i in range(count)]
    pids = {result["pid"] for result in results}
    assert len(pids) > 1  # separate task processes...
    assert os.getpid() not in pids  # ...none of them this one
    counters = bankapi_sandbox.counters()
    assert (after_first, counters["tokens_issued"]) == (1, 1)
    assert counters["api_requests"] == MAPPED + AGAIN
    (token,) = _host_tokens(cache_home)  # the one token, in the host store the processes shared
    forbidden = _forbidden(bankapi_sandbox, [token])
    for run, count in runs:
        _scan(run, "balance", range(count), forbidden)
    print(
        f"\n[figures] host scope: {MAPPED + AGAIN} task runs ({MAPPED} mapped, then {AGAIN} in a second "
        f"DAG run) in {len(pids)} "
        f"distinct processes -> {counters['tokens_issued']} token, "
        f"{counters['tls_connections']} TLS connections, {elapsed:.1f} s"
    )


def _run_hosts(sandbox, connection, hosts):
    result = run_dag(
        DAG_FILE,
        "bankapi_cluster_hosts",
        connections={"bankapi_default": connection},
        conf={"hosts": hosts},
        use_executor=True,
    )
    assert result.state == "success", result.task_states
    return result


def test_cluster_scope_two_hosts_one_after_the_other_share_one_token_through_a_masked_variable(
    bankapi_sandbox, airflow_api_server, tmp_path
):
    from airflow.models.variable import Variable

    connection = _text_connection(bankapi_sandbox, cache_scope="cluster")
    homes = [tmp_path / "host-a", tmp_path / "host-b"]
    runs = [
        _run_hosts(bankapi_sandbox, connection, [{"cache_home": str(home), "account_id": str(number)}])
        for number, home in enumerate(homes)
    ]

    assert bankapi_sandbox.counters()["tokens_issued"] == 1
    assert [run.xcom("on_host", map_index=0)["cache_home"] for run in runs] == [str(home) for home in homes]
    host_tokens = [_host_tokens(home) for home in homes]
    assert host_tokens[0] == host_tokens[1]  # host B found the token in the Variable and kept a copy
    (token,) = host_tokens[0]

    name = _variable_name(bankapi_sandbox)
    record = json.loads(Variable.get(name))  # the metadata DB holds the token itself...
    assert record["access_token"] == token
    assert record["expires_at"] > time.time()
    shown = airflow_api_server.get_json(f"/api/v2/variables/{name}")  # ...the API shows it masked
    assert shown["key"] == name
    # The API parses the JSON value and, the Variable's name holding "token", hides every string in it.
    assert json.loads(shown["value"])["access_token"] == "***"
    assert token not in json.dumps(shown)

    forbidden = _forbidden(bankapi_sandbox, [token])
    for run in runs:
        _scan(run, "on_host", [0], forbidden)


TRIALS = 2


def test_cluster_scope_simultaneous_cold_start_settles_on_one_token(
    bankapi_sandbox, airflow_api_server, tmp_path
):
    """Two hosts x two task processes, released together by a barrier on a cold cache, a few times."""
    from airflow.models.variable import Variable

    connection = _text_connection(bankapi_sandbox, cache_scope="cluster")
    name = _variable_name(bankapi_sandbox)
    figures = []
    for trial in range(TRIALS):
        Variable.delete(name)  # a cold cluster store; new host directories make cold host stores
        bankapi_sandbox.reset_counters()
        barrier = tmp_path / f"barrier-{trial}"
        barrier.mkdir()
        homes = [tmp_path / f"trial-{trial}-host-{host}" for host in "ab"]
        hosts = [
            {"cache_home": str(home), "account_id": str(index), "barrier": str(barrier), "parties": 4}
            for index, home in enumerate(homes * 2)
        ]

        run = _run_hosts(bankapi_sandbox, connection, hosts)

        issued = bankapi_sandbox.counters()["tokens_issued"]
        figures.append(issued)
        # Each host's file lock lets one of its processes renew; of the two hosts, one claim holds.
        assert issued == 1
        pids = {run.xcom("on_host", map_index=index)["pid"] for index in range(len(hosts))}
        assert len(pids) == len(hosts)
        per_host = [set(_host_tokens(home)) for home in homes]
        assert per_host[0] == per_host[1]
        assert len(per_host[0]) == 1  # every process of both hosts holds the one token
        assert Variable.get(claim_name(_cache_key(bankapi_sandbox)), default_var=None) is None  # released
        _scan(run, "on_host", range(len(hosts)), _forbidden(bankapi_sandbox, per_host[0]))
    print(
        f"\n[figures] cluster scope, 2 hosts x 2 processes, simultaneous cold start: tokens per trial "
        f"{figures}"
    )


def test_cluster_scope_a_variable_deleted_mid_day_costs_one_token_and_is_recreated(
    bankapi_sandbox, airflow_api_server, tmp_path
):
    from airflow.models.variable import Variable

    connection = _text_connection(bankapi_sandbox, cache_scope="cluster")
    name = _variable_name(bankapi_sandbox)
    host_a, host_b = ({"cache_home": str(tmp_path / host), "account_id": "1"} for host in "ab")

    _run_hosts(bankapi_sandbox, connection, [host_a])
    Variable.delete(name)
    # Host A still holds the token in its host store: no fetch, and the Variable stays deleted...
    _run_hosts(bankapi_sandbox, connection, [host_a])
    assert bankapi_sandbox.counters()["tokens_issued"] == 1
    assert Variable.get(name, default_var=None) is None
    # ...until a host without a copy needs one: it fetches one token and writes the Variable again.
    _run_hosts(bankapi_sandbox, connection, [host_b])
    assert bankapi_sandbox.counters()["tokens_issued"] == 2
    (token,) = _host_tokens(Path(host_b["cache_home"]))
    assert json.loads(Variable.get(name))["access_token"] == token

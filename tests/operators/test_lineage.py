"""OpenLineage events of the operators' real runs: the bank resource in, the final file out, never a
temporary object; and the temporary object never in Airflow's hook lineage.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk import lineage as hook_lineage
from airflow_harness import ensure_db, install_dag, run_airflow

from airflow_provider_bankapi.operators.lineage import bank_resource
from airflow_provider_bankapi.operators.outputs import write_bytes, write_csv, write_jsonl
from bankapi_sandbox import data

DAG_FILE = Path(__file__).parent / "dags" / "bankapi_operators.py"
BASE_PATH = "/public/gw_banking/v1"


def lineage_events(bank, dag_id: str, conf: dict) -> list[dict]:
    """The OpenLineage events of ``airflow dags test DAG_ID`` with the provider on, its console transport.

    ``airflow dags test`` runs the tasks in its own process, so the task-level events the console
    transport logs reach its output, one log line each with the event as JSON.
    """
    ensure_db()
    install_dag(DAG_FILE)
    result = run_airflow(
        "dags", "test", dag_id, "--conf", json.dumps(conf),
        env={"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "console"})},
        connections={"bankapi_default": bank.connection},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if "[openlineage.client.transport.console]" in line]
    return [json.loads(line[line.index("{") : line.rindex("}") + 1]) for line in lines]


def completed(events: list[dict], dag_id: str, task_id: str) -> dict:
    job = f"{dag_id}.{task_id}"
    [event] = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == job]
    return event


def datasets(items: list[dict]) -> list[tuple[str, str]]:
    return [(item["namespace"], item["name"]) for item in items]


def statistics(output: dict) -> dict:
    facet = output["outputFacets"]["outputStatistics"]
    return {"rowCount": facet.get("rowCount"), "size": facet.get("size")}


def bank_namespace(bank) -> str:
    parts = urlsplit(bank.base_url)
    return f"https://{parts.hostname}:{parts.port}"


@pytest.mark.airflow
def test_a_file_written_from_pages_is_the_output_and_the_bank_resource_the_input(bankapi_sandbox, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dag_id = "bankapi_transactions_rerun"
    events = lineage_events(bankapi_sandbox, dag_id, {"out": out.as_uri()})

    event = completed(events, dag_id, "transactions_file")
    target = out / "transactions.jsonl"
    resource = f"{BASE_PATH}/accounts/123/transactions"  # as written in the DAG
    assert datasets(event["inputs"]) == [(bank_namespace(bankapi_sandbox), resource)]
    assert datasets(event["outputs"]) == [("file", str(target))]
    assert statistics(event["outputs"][0]) == {
        "rowCount": data.transaction_count("123"),
        "size": target.stat().st_size,
    }
    assert ".tmp" not in json.dumps(events)


@pytest.mark.airflow
def test_balances_name_one_resource_for_every_account_and_a_run_without_a_file_has_no_output(
    bankapi_sandbox, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    dag_id = "bankapi_balances"
    conf = {"out": out.as_uri(), "accounts": ["123", "456"]}
    events = lineage_events(bankapi_sandbox, dag_id, conf)

    bank = [(bank_namespace(bankapi_sandbox), f"{BASE_PATH}/accounts/{{account_id}}/balance")]
    to_csv = completed(events, dag_id, "to_csv")
    assert datasets(to_csv["inputs"]) == bank
    assert datasets(to_csv["outputs"]) == [("file", str(out / "balances.csv"))]
    assert statistics(to_csv["outputs"][0]) == {"rowCount": 2, "size": (out / "balances.csv").stat().st_size}
    to_xcom = completed(events, dag_id, "to_xcom")
    assert (datasets(to_xcom["inputs"]), to_xcom["outputs"]) == (bank, [])
    assert ".tmp" not in json.dumps(events)


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda path: write_jsonl(path, [{"a": 1}]), id="jsonl"),
        pytest.param(lambda path: write_csv(path, [{"a": 1}]), id="csv"),
        pytest.param(lambda path: write_bytes(path, b"a;b\n"), id="bytes"),
    ],
)
def test_the_temporary_object_never_reaches_hook_lineage(tmp_path, monkeypatch, write):
    collector = hook_lineage.HookLineageCollector()
    monkeypatch.setattr(hook_lineage, "get_hook_lineage_collector", lambda: collector)
    path = ObjectStoragePath((tmp_path / "out.jsonl").as_uri())

    write(path)

    assert path.exists()
    collected = collector.collected_assets
    assert [info.asset.uri for info in (*collected.inputs, *collected.outputs)] == []


@pytest.mark.parametrize(
    ("base_url", "endpoint", "expected"),
    [
        pytest.param(
            "https://api.bank.example/public/gw_banking/v1", "/accounts/{account_id}/balance",
            ("https://api.bank.example:443", "/public/gw_banking/v1/accounts/{account_id}/balance"),
            id="default-port-written",
        ),
        pytest.param(
            "https://API.Bank.example:8443/public/gw_banking/v1/", "accounts/{{ params.id }}/transactions",
            ("https://api.bank.example:8443", "/public/gw_banking/v1/accounts/{{ params.id }}/transactions"),
            id="template-as-written",
        ),
    ],
)
def test_the_bank_resource_is_named_from_the_base_url_and_the_endpoint_as_written(
    base_url, endpoint, expected
):
    assert bank_resource(base_url, endpoint) == expected

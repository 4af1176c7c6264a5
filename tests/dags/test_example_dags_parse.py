"""The ``dags_examples/`` folder as Airflow's DAG processor sees it: every file parses, each is a template
a user can copy (one DAG, documented, the default connection id), and parsing stays cheap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"
EXPECTED = {
    "bankapi_hourly_balances",
    "bankapi_balances_mapped",
    "bankapi_wait_for_funds",
    "bankapi_certificate_check",
    "bankapi_transactions_daily",
    "bankapi_transactions_paginated",
    "bankapi_payout_on_funds",
}
# What a DAG file must not pull in at parse time: the HTTP stack and the provider's client layer are
# for the task that runs, not for the DAG processor that parses every file every 30 seconds.
# (cryptography is not listed: airflow.sdk itself imports it.)
HEAVY = (
    "requests",
    "urllib3",
    "airflow_provider_bankapi.client",
    # The OpenLineage provider is optional: the operators import it only when it asks for their lineage.
    "openlineage",
    "airflow.providers.openlineage",
)


@pytest.mark.airflow
def test_the_examples_folder_parses_without_errors_one_documented_dag_per_file():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))

    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXPECTED
    for dag_id in EXPECTED:
        dag = bag.get_dag(dag_id)
        assert Path(dag.fileloc).name == f"{dag_id}.py"  # one DAG per file, named after it
        assert "How to adapt it" in dag.doc_md
        assert {"bankapi", "example"} <= set(dag.tags)
        conn_ids = {getattr(task, "bankapi_conn_id", None) for task in dag.tasks} - {None}
        assert conn_ids <= {"bankapi_default"}


@pytest.mark.slow  # a fresh interpreter
def test_no_example_imports_the_http_stack_or_the_client_at_parse_time():
    # A fresh interpreter: this pytest process has imported everything already. One interpreter for all the
    # files: a heavy module is charged to the first file that imports it, and any such import fails the test.
    script = f"""
import importlib.util, json, sys
from pathlib import Path
import airflow.sdk  # what every DAG file imports anyway
heavy = {HEAVY!r}
found = {{}}
for path in sorted(Path({str(EXAMPLES)!r}).glob("*.py")):
    before = set(sys.modules)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    found[path.name] = sorted(
        name for name in set(sys.modules) - before if name.split(".")[0] in heavy or name.startswith(heavy)
    )
print(json.dumps(found))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(found) == {f"{dag_id}.py" for dag_id in EXPECTED}
    assert found == {name: [] for name in found}

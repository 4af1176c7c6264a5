"""``make demo`` end to end: its own Airflow (CLI subprocesses), the sandbox in the background, the hourly
balances DAG, the printed rows, and nothing left running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from written import jsonl_records

from bankapi_sandbox import data
from demos.airflow_demo import demo_environment

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags_examples"


@pytest.mark.slow  # Airflow and a sandbox in subprocesses
def test_the_demo_runs_the_hourly_dag_against_a_sandbox_it_starts_and_stops(tmp_path):
    state = tmp_path / "demo"
    stale = state / "output" / "balances" / "from-a-previous-run.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")

    result = subprocess.run(
        [sys.executable, "-m", "demos.airflow_demo", "--state", str(state),
         "--dags", str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert not stale.exists()  # re-runnable: the previous run's state is gone
    (written,) = (state / "output").rglob("*.jsonl")
    rows = jsonl_records(written.read_text())
    assert rows == [data.balance(account) for account in ("123", "456", "789")]
    printed = result.stdout.splitlines()
    assert f"[4/4] It wrote 3 balances to {written}:" in printed
    shown = "\n".join(line.strip() for line in printed if line.startswith("      {"))
    assert jsonl_records(shown) == rows
    assert "      The bank issued 1 token(s) for 3 balance calls." in printed
    assert printed[-1].startswith("Sandbox stopped.")
    assert not (state / "bank" / "sandbox.json").exists()  # the server stopped cleanly (it removes this)
    secret = json.loads((state / "bank" / "connection.json").read_text())["password"]
    assert secret not in result.stdout + result.stderr
    # The demo's Airflow was its own: the metadata DB is under the demo's state.
    assert (state / "airflow" / "airflow.db").is_file()


def test_the_demo_never_inherits_the_callers_airflow_settings_or_proxies(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://prod-db/airflow")
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", '{"conn_type": "bankapi", "host": "https://prod"}')
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")

    env = demo_environment(tmp_path, EXAMPLES)

    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
    assert "AIRFLOW_CONN_BANKAPI_DEFAULT" not in env  # set by the demo once its sandbox runs
    assert "HTTPS_PROXY" not in env
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(EXAMPLES)

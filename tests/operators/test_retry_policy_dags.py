"""The provider's retry policy as Airflow's task runner applies it, under dag.test() and the sandbox bank."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow_harness import run_dag

pytestmark = pytest.mark.airflow

DAG_FILE = Path(__file__).parent / "dags" / "bankapi_retry_policy.py"
TASKS = [("fetch_balance", index) for index in range(4)]


def try_numbers(result) -> dict[tuple[str, int], int]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        where = (TaskInstance.dag_id == result.dag_id, TaskInstance.run_id == result.run_id)
        rows = session.scalars(select(TaskInstance).where(*where)).all()
        return {(ti.task_id, ti.map_index): ti.try_number for ti in rows}


def test_a_wrong_secret_fails_each_mapped_task_on_its_first_try_with_one_token_request(
    bankapi_sandbox, airflow_connection, capfd
):
    conn = bankapi_sandbox.connection
    conn["password"] = "not-the-secret-0123456789"
    airflow_connection("bankapi_default", conn)

    result = run_dag(DAG_FILE)

    assert result.task_states == dict.fromkeys(TASKS, "failed")
    assert try_numbers(result) == dict.fromkeys(TASKS, 1)  # retries=3, none made
    assert sum(bankapi_sandbox.counters()["token_refused"].values()) == 4  # 16 without the policy
    assert "Invalid Credentials" in "".join(capfd.readouterr())


def test_a_503_is_retried_and_the_retry_succeeds(bankapi_sandbox, airflow_connection):
    conn = bankapi_sandbox.connection
    conn["extra"]["max_retries"] = 0
    airflow_connection("bankapi_default", conn)
    bankapi_sandbox.inject_fault("/accounts/101/balance", "503", count=1, retry_after=0)

    result = run_dag(DAG_FILE)

    assert result.task_states == dict.fromkeys(TASKS, "success")
    assert try_numbers(result) == {**dict.fromkeys(TASKS, 1), ("fetch_balance", 0): 2}

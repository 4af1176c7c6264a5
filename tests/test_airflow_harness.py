"""The test harness itself (tests/airflow_harness.py) against a real Airflow: what the DAG tests rely on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from airflow_harness import DAGS_FOLDER, run_dag

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).parent / "airflow_dags"


def test_dag_test_runs_tasks_in_this_process_with_variables_masker_and_an_inline_trigger():
    result = run_dag(DAGS / "harness_probe.py", connections={"harness_probe": {"conn_type": "http"}})

    assert result.state == "success"
    assert result.task_states == {("variables_and_masker", -1): "success", ("defer_once", -1): "success"}
    seen = result.xcom("variables_and_masker")
    assert seen["pid"] == os.getpid()
    assert seen["variable"] == "value-from-the-task"  # Variable.set then .get through the Task SDK
    assert seen["redacted"] == "the secret is ***"  # airflow.sdk.log.mask_secret reached the masker
    assert seen["conn_host"] is True  # the connection was visible during the run...
    assert "AIRFLOW_CONN_HARNESS_PROBE" not in os.environ  # ...and only then
    # resume() only runs on a trigger event: the deferral was served inline, without a triggerer.
    assert result.xcom("defer_once") == {"resumed": True, "pid": os.getpid(), "event_type": "DateTime"}
    ((classpath, kwargs),) = result.triggers()  # what a triggerer would have been handed
    assert classpath == "airflow.providers.standard.triggers.temporal.DateTimeTrigger"
    assert '"moment"' in kwargs
    assert [path.name for path in DAGS_FOLDER.iterdir()] == ["harness_probe.py"]


def test_use_executor_runs_each_task_in_its_own_process_with_masked_logs(airflow_api_server):
    result = run_dag(DAGS / "harness_processes.py", use_executor=True)

    assert result.state == "success"
    pids = {result.xcom("report", map_index=index) for index in (0, 1)}
    assert len(pids) == 2
    assert os.getpid() not in pids
    for index in (0, 1):
        log = result.task_log("report", map_index=index)
        assert f"task {index} prints the secret ***" in log
        assert f"task {index} logs the secret ***" in log
        assert "harness-process-secret" not in log

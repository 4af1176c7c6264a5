"""A DAG that exercises what the provider relies on in a task run by dag.test(): Variables, the
secrets masker, a deferral resumed from an inline trigger. Used by tests/test_airflow_harness.py."""

from __future__ import annotations

import datetime
import os

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import DAG, BaseOperator, Variable, task


class DeferOnce(BaseOperator):
    """Defers once to a trigger that fires at once, then returns what the trigger sent."""

    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(datetime.timedelta(0)), method_name="resume")

    def resume(self, context, event=None):
        return {"resumed": True, "pid": os.getpid(), "event_type": type(event).__name__}


with DAG("harness_probe", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):

    @task
    def variables_and_masker():
        from airflow.sdk.log import mask_secret, redact

        Variable.set("harness_probe_token", "value-from-the-task")
        secret = "harness-probe-secret-0123456789"
        mask_secret(secret)
        return {
            "variable": Variable.get("harness_probe_token"),
            "redacted": redact(f"the secret is {secret}"),
            "pid": os.getpid(),
            "conn_host": os.environ.get("AIRFLOW_CONN_HARNESS_PROBE") is not None,
        }

    variables_and_masker() >> DeferOnce(task_id="defer_once")

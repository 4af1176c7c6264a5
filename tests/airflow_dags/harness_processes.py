"""A mapped task whose instances report their process and print a secret registered with the masker.

Run with ``use_executor=True`` by tests/test_airflow_harness.py: each task instance in its own process,
its log written through Airflow's secrets masker.
"""

from __future__ import annotations

import datetime
import logging
import os

from airflow.sdk import DAG, task

SECRET = "harness-process-secret-0123456789"

with DAG("harness_processes", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):

    @task
    def report(index):
        from airflow.sdk.log import mask_secret

        mask_secret(SECRET)
        print(f"task {index} prints the secret {SECRET}")
        logging.getLogger(__name__).info("task %s logs the secret %s", index, SECRET)
        return os.getpid()

    report.expand(index=[0, 1])

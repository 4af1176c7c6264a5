"""Sensors that wait on "not yet": the sandbox's statement answers 404 until the bank closes it."""

from __future__ import annotations

import datetime

from airflow.sdk import DAG

from airflow_provider_bankapi.sensors.bankapi import BankingApiSensor

START = datetime.datetime(2024, 1, 1)

for deferrable in (False, True):
    with DAG(
        f"bankapi_sensor_waits_on_404_{'deferred' if deferrable else 'poke'}",
        schedule=None,
        start_date=START,
        catchup=False,
    ):
        BankingApiSensor(
            task_id="statement",
            endpoint="/accounts/123/statement",
            field="status",
            value="AVAILABLE",
            waiting_statuses=(404,),
            deferrable=deferrable,
            poke_interval=0.1,
            timeout=120,
        )

with DAG("bankapi_sensor_fails_on_404", schedule=None, start_date=START, catchup=False):
    # Without waiting_statuses a 404 is the bank's final word: the task fails at the first look.
    BankingApiSensor(
        task_id="statement",
        endpoint="/accounts/123/statement",
        field="status",
        value="AVAILABLE",
        deferrable=False,
        poke_interval=0.1,
        timeout=120,
    )

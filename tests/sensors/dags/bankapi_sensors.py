"""Sensor DAGs run with dag.test() by tests/sensors/test_sensors.py against the sandbox bank."""

from __future__ import annotations

import datetime

from airflow.sdk import DAG, task

from airflow_provider_bankapi.sensors.bankapi import BankingApiBalanceSensor, BankingApiSensor

START = datetime.datetime(2024, 1, 1)


@task
def seen(value):
    """What a downstream task receives from the sensor's XCom, with its type."""
    return {"value": value, "type": type(value).__name__}


with DAG(
    "bankapi_sensors_poke", schedule=None, start_date=START, catchup=False, render_template_as_native_obj=True
):
    funds = BankingApiBalanceSensor(
        task_id="funds",
        account_id="{{ dag_run.conf['account'] }}",
        threshold="{{ dag_run.conf['threshold'] }}",
        deferrable=False,
        poke_interval=0.1,
        timeout=30,
    )
    seen.override(task_id="funds_seen")(funds.output)
    BankingApiSensor(
        task_id="accounts_listed",
        endpoint="/accounts",
        response_check=lambda response: len(response["items"]) >= 3,
        deferrable=False,
        poke_interval=0.1,
        timeout=30,
    )

with DAG("bankapi_sensor_defers", schedule=None, start_date=START, catchup=False):
    wait = BankingApiSensor(
        task_id="wait",
        endpoint="/accounts/123/balance",
        field="available",
        response_check="bankapi_test_checks.true_on_third_look",
        deferrable=True,
        poke_interval=0.2,
        timeout=120,
    )
    seen.override(task_id="wait_seen")(wait.output)

with DAG("bankapi_sensor_times_out", schedule=None, start_date=START, catchup=False):
    for task_id, soft_fail in (("fails", False), ("skips", True)):
        BankingApiBalanceSensor(
            task_id=task_id,
            account_id="123",
            threshold="1000000000000.00",
            deferrable=True,
            poke_interval=0.3,
            timeout=1.5,
            soft_fail=soft_fail,
        )

with DAG("bankapi_sensor_loses_its_credential", schedule=None, start_date=START, catchup=False):
    BankingApiSensor(
        task_id="wait",
        endpoint="/accounts/123/balance",
        response_check="bankapi_test_checks.deactivate_credential_on_first_look",
        deferrable=True,
        poke_interval=0.2,
        timeout=120,
    )

with DAG("bankapi_sensor_defers_on_exact_money", schedule=None, start_date=START, catchup=False):
    wait = BankingApiSensor(
        task_id="wait",
        endpoint="/open-banking/accounts/123/balances",
        field="data.availableAmount.amount",  # 1000.0400, a JSON number
        response_check="bankapi_test_checks.true_on_third_look",
        deferrable=True,
        poke_interval=0.2,
        timeout=120,
    )
    seen.override(task_id="wait_seen")(wait.output)

"""Sensors that wait on "not yet": ``waiting_statuses`` in poke and deferrable mode, against the sandbox's
statement that answers 404 until the bank closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_harness import run_dag

from airflow_provider_bankapi.errors import (
    ApiError,
    ConfigurationError,
    ForbiddenError,
    InvalidClientCertificateError,
    InvalidCredentialsError,
)
from airflow_provider_bankapi.sensors.bankapi import BankingApiBalanceSensor, BankingApiSensor
from airflow_provider_bankapi.triggers.bankapi import BankingApiTrigger
from airflow_provider_bankapi.triggers.polling import Condition
from bankapi_sandbox import data

DAG_FILE = Path(__file__).parent / "dags" / "bankapi_sensors_waiting.py"
STATEMENT = "/accounts/123/statement"


# -- what the condition decides (no I/O) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "refusal"),
    [
        pytest.param((401,), "refusal of the credential", id="401"),
        pytest.param((404, 403), "allowlist", id="403"),
        pytest.param((429,), "already transient", id="429"),
        pytest.param((408,), "already transient", id="408"),
        pytest.param((503,), "a 5xx is already transient", id="5xx"),
        pytest.param((200,), "4xx statuses only", id="2xx"),
        pytest.param((302,), "4xx statuses only", id="3xx"),
        pytest.param(("404",), "statuses are numbers", id="text"),
        pytest.param(404, "a tuple such as (404,)", id="not-a-tuple"),
        pytest.param((True,), "statuses are numbers", id="bool"),
    ],
)
def test_statuses_that_make_no_sense_to_wait_on_are_refused_when_the_dag_is_parsed(statuses, refusal):
    for make in (
        lambda: BankingApiSensor(task_id="s", endpoint=STATEMENT, waiting_statuses=statuses),
        lambda: BankingApiBalanceSensor(task_id="b", account_id="1", threshold=1, waiting_statuses=statuses),
    ):
        with pytest.raises(ConfigurationError, match=re.escape(refusal)) as raised:
            make()
        assert raised.value.field == "waiting_statuses"


def test_a_waiting_status_is_an_unmet_condition_and_any_other_error_is_not():
    condition = Condition(field="status", comparison="==", value="AVAILABLE", waiting_statuses=(404, 409))

    not_found = ApiError("not ready", status_code=404)
    assert condition.not_yet(not_found) is not None
    assert not condition.not_yet(not_found).met
    assert condition.not_yet(ApiError("gone", status_code=410)) is None
    # A gateway's 400 for a refused certificate stays a refusal, whatever the statuses say.
    refused_certificate = InvalidClientCertificateError("x", status_code=400)
    assert Condition(waiting_statuses=(400,)).not_yet(refused_certificate) is None
    assert condition.not_yet(ConfigurationError("x")) is None
    assert condition.not_yet(InvalidCredentialsError("x", status_code=401)) is None
    assert condition.not_yet(ForbiddenError("x", status_code=403)) is None


def test_waiting_statuses_travel_to_the_trigger_as_plain_values_and_are_absent_by_default():
    condition = Condition(field="status", comparison="==", value="AVAILABLE", waiting_statuses=(409, 404))

    plain = condition.to_dict()
    assert json.loads(json.dumps(plain)) == plain
    assert plain["waiting_statuses"] == [404, 409]
    assert Condition.from_dict(plain) == condition
    assert "waiting_statuses" not in Condition(field="status").to_dict()  # as serialized before
    assert Condition.from_dict({"field": "status"}).waiting_statuses == ()


# -- real runs against the sandbox --------------------------------------------------------------------


@pytest.fixture
def bank(bankapi_sandbox, airflow_connection):
    airflow_connection("bankapi_default", bankapi_sandbox.connection)
    return bankapi_sandbox


@contextlib.contextmanager
def statement_closed_after(bank, not_yet: int) -> Iterator[None]:
    """The bank closes account 123's statement once it has answered ``not_yet`` requests for it (or never,
    when the block ends first).
    """
    done = threading.Event()

    def close() -> None:
        while bank.counters()["api_requests"] < not_yet:
            if done.wait(0.02):
                return
        bank.set_statement_ready("123")

    closer = threading.Thread(target=close, daemon=True)
    closer.start()
    try:
        yield
    finally:
        done.set()
        closer.join()


@pytest.mark.airflow
@pytest.mark.parametrize("mode", [pytest.param("poke", id="poke"), pytest.param("deferred", id="deferred")])
def test_the_sensor_waits_through_404_until_the_statement_exists(bank, capfd, mode):
    with statement_closed_after(bank, not_yet=3):
        result = run_dag(DAG_FILE, f"bankapi_sensor_waits_on_404_{mode}")

    assert result.state == "success", result.task_states
    assert result.xcom("statement") == "AVAILABLE"
    assert bank.counters()["api_requests"] >= 4  # three answers of 404, then the statement
    console = "".join(capfd.readouterr())
    not_yet = [line for line in console.splitlines() if "HTTP 404, not yet" in line]
    assert not_yet  # logged as an unmet condition is: "waiting until status == AVAILABLE (now ...)"
    assert all("waiting until status == AVAILABLE" in line and "[info" in line for line in not_yet)
    if mode == "deferred":
        ((_, stored),) = result.triggers()
        assert json.loads(stored)["condition"]["waiting_statuses"] == [404]
    else:
        assert result.triggers() == []


@pytest.mark.airflow
def test_without_waiting_statuses_a_404_fails_the_sensor_at_the_first_look(bank):
    result = run_dag(DAG_FILE, "bankapi_sensor_fails_on_404")

    assert result.task_states == {("statement", -1): "failed"}
    assert bank.counters()["api_requests"] == 1


def test_the_sandbox_statement_answers_404_until_the_bank_closes_it(bank):
    from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

    hook = BankingApiHook(bankapi_conn_id="bankapi_default")
    with pytest.raises(ApiError) as refused:
        hook.get_json(STATEMENT)
    assert refused.value.status_code == 404
    bank.set_statement_ready("123")
    assert hook.get_json(STATEMENT) == {
        "account_id": "123",
        "status": "AVAILABLE",
        "transactions": data.transaction_count("123"),
    }


def test_the_trigger_polls_through_404_and_ends_with_the_statement(bank):
    trigger = BankingApiTrigger(
        bankapi_conn_id="bankapi_default",
        endpoint=STATEMENT,
        condition={"field": "status", "comparison": "==", "value": "AVAILABLE", "waiting_statuses": [404]},
        poke_interval=0.05,
    )
    rebuilt = BankingApiTrigger(**trigger.serialize()[1])  # as the triggerer builds it

    async def first_event():
        return await anext(rebuilt.run(), None)

    with statement_closed_after(bank, not_yet=2):
        event = asyncio.run(first_event())

    assert event.payload["status"] == "success", event.payload
    assert event.payload["value"] == "AVAILABLE"
    assert event.payload["polls"] >= 3  # two answers of 404, then the statement

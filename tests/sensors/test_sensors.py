"""The sensors in real DAG runs (dag.test() against the session's Airflow) and the sandbox bank.

dag.test() runs a deferred task's trigger inline, rebuilt by class path from its serialized kwargs as a
triggerer would, then resumes the task with the trigger's event: a real defer -> trigger -> resume.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog.testing
from airflow_harness import run_dag

from airflow_provider_bankapi.errors import (
    ConfigurationError,
    ForbiddenError,
    InvalidCredentialsError,
)
from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from airflow_provider_bankapi.sensors.bankapi import BankingApiBalanceSensor, BankingApiSensor
from bankapi_sandbox import data

DAG_FILE = Path(__file__).parent / "dags" / "bankapi_sensors.py"
TRIGGER = "airflow_provider_bankapi.triggers.bankapi.BankingApiTrigger"


def secrets_of(sandbox) -> list[str]:
    """client_secret, PFX password, lines of the private key, and the live token (from the host cache)."""
    key_lines = [line for line in sandbox.client_key.read_text().splitlines() if line and "-----" not in line]
    token = BankingApiHook(bankapi_conn_id="bankapi_default").get_token().access_token
    return [
        sandbox.connection["password"],
        sandbox.connection_pfx["extra"]["client_pfx_password"],
        token,
        *key_lines[:3],
    ]


@pytest.fixture
def bank(bankapi_sandbox, airflow_connection):
    """The sandbox, as the connection ``bankapi_default`` for the whole test (DAG run and checks)."""
    airflow_connection("bankapi_default", bankapi_sandbox.connection)
    return bankapi_sandbox


@pytest.fixture
def looks(tmp_path, monkeypatch):
    counter = tmp_path / "looks"
    monkeypatch.setenv("BANKAPI_TEST_LOOKS", str(counter))
    return counter


# -- construction (no I/O) ---------------------------------------------------------------------------


def test_a_callable_check_cannot_be_deferred():
    with pytest.raises(ValueError, match="dotted path"):
        BankingApiSensor(task_id="s", endpoint="/accounts", response_check=lambda r: True, deferrable=True)
    BankingApiSensor(task_id="ok", endpoint="/accounts", response_check=lambda r: True, deferrable=False)
    BankingApiSensor(task_id="ok2", endpoint="/accounts", response_check="operator.truth", deferrable=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"threshold": "lots"}, id="threshold-not-a-number"),
        pytest.param({"threshold": 10, "comparison": "=>"}, id="unknown-comparison"),
    ],
)
def test_balance_sensor_arguments_are_checked_when_the_dag_is_parsed(kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked by the next test
        BankingApiBalanceSensor(task_id="s", account_id="123", **kwargs)


def test_a_templated_threshold_is_checked_when_it_is_rendered():
    sensor = BankingApiBalanceSensor(task_id="s", account_id="123", threshold="{{ params.minimum }}")
    sensor.threshold = "not rendered to a number"

    with pytest.raises(ConfigurationError, match="threshold"):
        sensor._condition()


@pytest.mark.parametrize(
    "account_id", [pytest.param("123/../456", id="dot-dot"), pytest.param("1\n2", id="newline")]
)
def test_a_rendered_account_id_that_is_not_one_path_segment_is_refused_before_any_poll(account_id):
    sensor = BankingApiBalanceSensor(task_id="s", account_id="{{ params.account }}", threshold=1)
    sensor.account_id = account_id  # as rendered from a trigger form

    with pytest.raises(ConfigurationError, match="The account id") as refused:
        sensor._endpoint()
    assert refused.value.field == "account_id"


@pytest.mark.parametrize(
    ("event", "raised", "text"),
    [
        pytest.param(
            {
                "status": "error",
                "error_type": "InvalidCredentialsError",
                "message": "POST /auth/token-v2 answered 401",
                "hint": "Check the Client ID",
                "bank_reason": "Invalid Credentials",
                "status_code": 401,
                "polls": 1,
            },
            InvalidCredentialsError,
            "Invalid Credentials",
            id="invalid-credentials",
        ),
        pytest.param(
            {
                "status": "error",
                "error_type": "ForbiddenError",
                "message": "GET /accounts/1/balance answered 403",
                "hint": "allowlist",
                "bank_reason": "Forbidden",
                "status_code": 403,
                "polls": 4,
            },
            ForbiddenError,
            "Forbidden",
            id="forbidden",
        ),
    ],
)
def test_execute_complete_raises_the_error_of_the_event_with_reason_and_hint(event, raised, text):
    sensor = BankingApiSensor(task_id="s", endpoint="/accounts/1/balance", deferrable=True)

    with pytest.raises(raised, match=text) as caught:
        sensor.execute_complete(context={}, event=event)
    assert caught.value.hint == event["hint"]
    assert caught.value.status_code == event["status_code"]


# -- real DAG runs ------------------------------------------------------------------------------------


def test_quiet_pokes_log_below_info_and_a_transient_error_and_the_answer_after_it_reach_info(
    bankapi_sandbox, monkeypatch
):
    conn = {**bankapi_sandbox.connection, "extra": {**bankapi_sandbox.connection["extra"], "max_retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(conn))
    sensor = BankingApiBalanceSensor(task_id="quiet", account_id="123", threshold="1000000000000")

    with structlog.testing.capture_logs() as logged:
        for look in range(100):
            if look == 50:
                bankapi_sandbox.inject_fault("/accounts/123/balance", "503", count=1)
            assert sensor.poke({}) is False  # type: ignore[arg-type]

    loud = [entry["event"] for entry in logged if entry["log_level"] not in ("debug", "notset")]
    own = [line for line in loud if "/accounts/123/balance" in line]
    assert len(own) == 3, loud
    assert "waiting until" in own[0]  # the first look: the start of the wait
    assert "ServerError" in own[1]
    assert "answered again after 1 transient errors" in own[2]


@pytest.mark.airflow
def test_poke_mode_sensors_in_a_dag_run(bank):
    balance = data.balance("123")["available"]

    result = run_dag(
        DAG_FILE,
        "bankapi_sensors_poke",
        conf={"account": "123", "threshold": balance},  # exactly the balance: >= holds, to the cent
    )

    assert result.state == "success", result.task_states
    assert result.xcom("funds_seen") == {"value": balance, "type": "str"}  # the bank's exact text
    assert len(result.xcom("accounts_listed")["items"]) == 3
    assert result.triggers() == []  # poke mode: no deferral
    assert bank.counters()["tokens_issued"] == 1
    xcoms = json.dumps({str(key): value for key, value in result.xcoms().items()}, default=str)
    for secret in secrets_of(bank):
        assert secret not in xcoms


@pytest.mark.airflow
def test_a_deferrable_sensor_defers_waits_in_the_trigger_and_resumes(bank, looks):
    result = run_dag(DAG_FILE, "bankapi_sensor_defers")

    assert result.state == "success", result.task_states
    # Look 1 in the worker (not yet), then the task deferred: polls 2 (not yet) and 3 (yes) in the trigger.
    assert looks.read_text() == "3"
    ((classpath, stored),) = result.triggers()
    assert classpath == TRIGGER
    kwargs = json.loads(stored)
    assert kwargs["bankapi_conn_id"] == "bankapi_default"
    for secret in secrets_of(bank):
        assert secret not in stored
    # The value came back through the trigger's event to execute_complete, then to XCom.
    assert result.xcom("wait_seen") == {"value": data.balance("123")["available"], "type": "str"}
    counters = bank.counters()
    assert counters["api_requests"] == 3
    assert counters["tokens_issued"] == 1  # the trigger reused the worker's token


@pytest.mark.airflow
def test_a_decimal_the_trigger_observed_comes_back_with_the_banks_digits(bank, looks):
    result = run_dag(DAG_FILE, "bankapi_sensor_defers_on_exact_money")

    assert result.state == "success", result.task_states
    assert looks.read_text() == "3"  # it deferred: the value came through the trigger's event
    seen = result.xcom("wait_seen")
    assert seen["type"] == "BankDecimal"  # what the downstream task received
    assert seen["value"]["__data__"] == "1000.0400"  # as stored: the digits, never a float


@pytest.mark.airflow
def test_a_deferred_wait_that_never_ends_times_out_or_skips_with_soft_fail(bank):
    result = run_dag(DAG_FILE, "bankapi_sensor_times_out")

    assert result.task_states == {("fails", -1): "failed", ("skips", -1): "skipped"}
    assert [classpath for classpath, _ in result.triggers()] == [TRIGGER, TRIGGER]
    # Each: one look in the worker, then polls 0.3 s apart until the 1.5 s deadline.
    assert bank.counters()["api_requests"] <= 2 * (1 + 1.5 / 0.3)


@pytest.mark.airflow
def test_a_credential_deactivated_during_the_wait_fails_the_task_with_the_banks_reason(
    bank, looks, monkeypatch, capfd
):
    monkeypatch.setenv("BANKAPI_TEST_SANDBOX_DIR", str(bank.dir))

    result = run_dag(DAG_FILE, "bankapi_sensor_loses_its_credential")

    assert result.task_states == {("wait", -1): "failed"}
    assert looks.read_text() == "1"  # the trigger never got an answer to check: no poll after the refusal
    counters = bank.counters()
    assert counters["token_refused"] == {"invalid_credentials": 1}  # one refusal, no hot loop
    output = capfd.readouterr()
    console = output.out + output.err
    assert "InvalidCredentialsError" in console
    assert "Invalid Credentials" in console
    assert bank.connection["password"] not in console

"""The provider's retry policy, decided on the errors the sandbox bank really causes.

Each breakage below is made at the bank (or in the connection) and met through the hook, as a task
meets it; the policy's decision is then what Airflow's task runner acts on.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
from airflow.sdk.exceptions import AirflowException

from airflow_provider_bankapi.errors import (
    ApiError,
    ConnectionFailedError,
    RateLimitedError,
    ServerError,
    TlsHandshakeError,
)
from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator, BankingApiOperator
from airflow_provider_bankapi.retry_policy import BankingApiRetryPolicy, bank_error
from airflow_provider_bankapi.sensors.bankapi import BankingApiBalanceSensor, BankingApiSensor
from airflow_provider_bankapi.triggers.bankapi import error_from_payload, error_payload

POLICY = BankingApiRetryPolicy()
BALANCE = "/accounts/123/balance"


def failure_of(sandbox, monkeypatch, conn=None) -> BaseException:
    """The exception a task calling the balance endpoint fails with, through a real hook."""
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(conn or sandbox.connection))
    with pytest.raises(Exception) as caught:  # noqa: PT011 - any failure: the test looks at its type next
        BankingApiHook(bankapi_conn_id="bankapi_default").get_json(BALANCE)
    return caught.value


def _wrong_secret(sandbox, conn):
    conn["password"] = "not-the-secret-0123456789"


def _deactivated(sandbox, conn):
    sandbox.core.deactivate(sandbox.client_id)


def _unbound_certificate(sandbox, conn):
    files = sandbox.issue_client_certificate("stranger", bind=False)
    conn["extra"].update(client_cert=str(files.certificate), client_private_key=str(files.private_key))


def _not_on_the_allowlist(sandbox, conn):
    sandbox.core.set_allowed_ips(sandbox.client_id, ["192.0.2.10"])


def _untrusted_server(sandbox, conn):
    conn["extra"].pop("ca_cert", None)  # the system's CAs do not trust the sandbox's server


def _unreadable_key(sandbox, conn):
    conn["extra"]["client_private_key"] = "/nonexistent/client.key"


@pytest.mark.parametrize(
    ("breakage", "error_type", "said"),
    [
        pytest.param(_wrong_secret, "InvalidCredentialsError", "Invalid Credentials", id="wrong-secret"),
        pytest.param(_deactivated, "InvalidCredentialsError", "Invalid Credentials", id="deactivated"),
        pytest.param(
            _unbound_certificate,
            "InvalidClientCertificateError",
            "Invalid Client Certificate",
            id="unbound-certificate",
        ),
        pytest.param(_not_on_the_allowlist, "ForbiddenError", "allowlist", id="not-on-the-allowlist"),
        pytest.param(_untrusted_server, "TlsHandshakeError", "not trusted", id="untrusted-server"),
        pytest.param(_unreadable_key, "ClientIdentityError", "client_private_key", id="unreadable-key"),
    ],
)
def test_a_refusal_a_retry_cannot_change_fails_the_task_at_once_with_the_banks_reason(
    bankapi_sandbox, monkeypatch, breakage, error_type, said
):
    conn = bankapi_sandbox.connection
    breakage(bankapi_sandbox, conn)
    failure = failure_of(bankapi_sandbox, monkeypatch, conn)
    assert type(failure).__name__ == error_type

    decision = POLICY.evaluate(failure, try_number=1, max_tries=4)

    assert decision.action is RetryAction.FAIL
    assert decision.reason.startswith(f"{error_type}: ")
    assert said in decision.reason
    assert bankapi_sandbox.counters()["tokens_issued"] == 0


@pytest.mark.parametrize(
    ("retry_after", "policy", "task_delay", "expected"),
    [
        pytest.param(120, POLICY, timedelta(seconds=30), timedelta(seconds=120), id="bank-asks-longer"),
        pytest.param(
            120,
            BankingApiRetryPolicy(max_retry_after=timedelta(seconds=90)),
            timedelta(seconds=30),
            timedelta(seconds=90),
            id="capped",
        ),
        pytest.param(120, POLICY, timedelta(minutes=5), None, id="task-delay-longer"),
    ],
)
def test_a_429_is_retried_no_sooner_than_its_retry_after(
    bankapi_sandbox, monkeypatch, retry_after, policy, task_delay, expected
):
    conn = bankapi_sandbox.connection
    conn["extra"]["max_retries"] = 0  # else the call itself waits the 120 s (within its wait budget)
    bankapi_sandbox.inject_fault(BALANCE, "429", count=1, retry_after=retry_after)
    failure = failure_of(bankapi_sandbox, monkeypatch, conn)
    assert isinstance(failure, RateLimitedError)
    assert failure.retry_after == retry_after

    task = BankingApiOperator(task_id="t", endpoint=BALANCE, retry_delay=task_delay)
    decision = policy.evaluate(failure, try_number=1, max_tries=4, context={"task": task})

    assert decision.action is RetryAction.RETRY
    assert decision.retry_delay == expected
    assert "RateLimitedError" in decision.reason


def test_a_server_error_is_retried_after_the_tasks_own_delay(bankapi_sandbox, monkeypatch):
    conn = bankapi_sandbox.connection
    conn["extra"]["max_retries"] = 0
    bankapi_sandbox.inject_fault(BALANCE, "503", count=1, retry_after=0)
    failure = failure_of(bankapi_sandbox, monkeypatch, conn)
    assert isinstance(failure, ServerError)

    decision = POLICY.evaluate(failure, try_number=1, max_tries=4)

    assert (decision.action, decision.retry_delay) == (RetryAction.RETRY, None)


def test_no_answer_is_retried_after_the_tasks_own_delay(bankapi_sandbox, monkeypatch):
    conn = bankapi_sandbox.connection
    conn["extra"]["max_retries"] = 0
    bankapi_sandbox.inject_fault(BALANCE, "drop", count=1)
    failure = failure_of(bankapi_sandbox, monkeypatch, conn)
    assert isinstance(failure, ConnectionFailedError)

    assert POLICY.evaluate(failure, try_number=1, max_tries=4).action is RetryAction.RETRY


def test_another_4xx_falls_through_to_airflows_own_retries(bankapi_sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(bankapi_sandbox.connection))
    with pytest.raises(ApiError) as caught:
        BankingApiHook(bankapi_conn_id="bankapi_default").get_json("/accounts/no.such/balance")
    assert caught.value.status_code == 404

    assert POLICY.evaluate(caught.value, try_number=1, max_tries=4).action is RetryAction.DEFAULT


@pytest.mark.parametrize(
    ("error", "action"),
    [
        pytest.param(ServerError("503", status_code=503), RetryAction.RETRY, id="server-error"),
        pytest.param(
            TlsHandshakeError("reset mid-handshake"), RetryAction.RETRY, id="tls-dropped-mid-handshake"
        ),
        pytest.param(
            TlsHandshakeError("rejected", client_certificate_rejected=True),
            RetryAction.FAIL,
            id="tls-certificate-rejected",
        ),
        pytest.param(ApiError("token refused after renewal", status_code=401), RetryAction.FAIL, id="401"),
        pytest.param(ApiError("timeout", status_code=408), RetryAction.RETRY, id="408"),
        pytest.param(ValueError("not the bank's"), RetryAction.DEFAULT, id="not-a-bank-error"),
    ],
)
def test_each_error_of_the_tree_gets_its_decision(error, action):
    assert POLICY.evaluate(error, try_number=1, max_tries=4).action is action


def test_a_bank_error_behind_another_exception_still_decides():
    try:
        try:
            raise ApiError("Invalid Credentials", status_code=401)
        except ApiError as exc:
            raise AirflowException("the task failed") from exc
    except AirflowException as wrapped:
        failure = wrapped
    assert bank_error(failure) is failure.__cause__
    assert POLICY.evaluate(failure, try_number=1, max_tries=4).action is RetryAction.FAIL


def test_an_error_that_ended_a_deferred_wait_decides_as_the_original(bankapi_sandbox, monkeypatch):
    conn = bankapi_sandbox.connection
    _wrong_secret(bankapi_sandbox, conn)
    original = failure_of(bankapi_sandbox, monkeypatch, conn)
    resumed = error_from_payload(json.loads(json.dumps(error_payload(original, polls=1))))

    decision = POLICY.evaluate(resumed, try_number=1, max_tries=4)

    assert decision.action is RetryAction.FAIL
    assert "Invalid Credentials" in decision.reason


def test_a_rate_limit_without_retry_after_is_retried_after_the_tasks_delay():
    decision = POLICY.evaluate(RateLimitedError("429", status_code=429), try_number=1, max_tries=4)
    assert (decision.action, decision.retry_delay) == (RetryAction.RETRY, None)


def test_the_policy_survives_serialization():
    policy = BankingApiRetryPolicy(max_retry_after=timedelta(minutes=10))
    assert BankingApiRetryPolicy.deserialize(json.loads(json.dumps(policy.serialize()))) == policy


def test_a_cap_that_is_no_wait_is_refused():
    with pytest.raises(ValueError, match="max_retry_after"):
        BankingApiRetryPolicy(max_retry_after=timedelta(0))


def _operators(**kwargs):
    return [
        BankingApiOperator(task_id="call", endpoint="/accounts", **kwargs),
        BankingApiBalanceOperator(task_id="balances", account_ids=["123"], **kwargs),
        BankingApiSensor(task_id="wait", endpoint="/accounts", **kwargs),
        BankingApiBalanceSensor(task_id="funds", account_id="123", threshold=1, **kwargs),
    ]


def test_every_operator_and_sensor_has_the_banks_policy_by_default():
    assert [type(task.retry_policy) for task in _operators()] == [BankingApiRetryPolicy] * 4


def test_a_policy_of_the_users_own_is_kept():
    mine = ExceptionRetryPolicy(rules=[RetryRule(exception=ValueError, action=RetryAction.FAIL)])
    assert [task.retry_policy for task in _operators(retry_policy=mine)] == [mine] * 4


def test_a_mapped_task_gets_the_policy_when_it_is_unmapped():
    mapped = BankingApiBalanceOperator.partial(task_id="mapped", max_workers=2).expand(
        account_ids=[["123"], ["456"]]
    )
    assert mapped.retry_policy is None  # nothing to serialize while the DAG is parsed
    unmapped = mapped.unmap({"account_ids": ["123"]})
    assert isinstance(unmapped.retry_policy, BankingApiRetryPolicy)


def test_a_tls_refusal_that_ended_a_deferred_wait_still_fails_the_task_at_once():
    refused = TlsHandshakeError("the bank refused the client certificate", client_certificate_rejected=True)
    resumed = error_from_payload(json.loads(json.dumps(error_payload(refused, polls=1))))

    assert (type(resumed), resumed.transient) == (TlsHandshakeError, False)
    assert POLICY.evaluate(resumed, try_number=1, max_tries=4).action is RetryAction.FAIL

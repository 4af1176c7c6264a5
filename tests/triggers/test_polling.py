"""The pure decisions of a wait: conditions, which errors end it, how long to wait between polls."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_bankapi.errors import (
    ApiError,
    ClientIdentityError,
    ConfigurationError,
    ConnectionFailedError,
    ForbiddenError,
    InvalidClientCertificateError,
    InvalidCredentialsError,
    RateLimitedError,
    ServerError,
    TlsHandshakeError,
    TokenResponseError,
)
from airflow_provider_bankapi.triggers.bankapi import error_from_payload, error_payload
from airflow_provider_bankapi.triggers.polling import (
    Condition,
    WaitLog,
    as_decimal,
    field_value,
    import_check,
    wait_before_next_poll,
)

BALANCE = {"account_id": "123", "available": "1500.00", "current": "1500.10", "currency": "BRL"}


@pytest.mark.parametrize(
    ("comparison", "value", "met"),
    [
        pytest.param(">=", "1500.00", True, id="ge-equal"),
        pytest.param(">=", "1500.01", False, id="ge-one-cent-short"),
        pytest.param(">", "1500", False, id="gt-equal"),
        pytest.param(">", 1499.99, True, id="gt-float-threshold"),
        pytest.param("<=", 1500, True, id="le-int-threshold"),
        pytest.param("<", "1500.000", False, id="lt-more-decimals"),
        pytest.param("==", "1500", True, id="eq-numeric-not-textual"),
        pytest.param("!=", "1500.0", False, id="ne-numeric"),
    ],
)
def test_balance_thresholds_compare_as_decimal(comparison, value, met):
    outcome = Condition(field="available", comparison=comparison, value=value).evaluate(BALANCE)

    assert outcome.met is met
    assert outcome.observed == "1500.00"


def test_a_float_threshold_means_its_decimal_text_not_its_binary_value():
    # 0.1 + 0.2 as floats is 0.30000000000000004; the bank's "0.30" must meet a threshold of 0.3.
    assert Condition(field="available", comparison=">=", value=0.3).evaluate({"available": "0.30"}).met
    assert as_decimal(0.1) == Decimal("0.1")


@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        pytest.param({"a": {"b": 1}}, "a.b", 1, id="nested"),
        pytest.param({"items": [{"s": "x"}, {"s": "y"}]}, "items.1.s", "y", id="list-index"),
        pytest.param({"items": [1, 2, 3]}, "items.-1", 3, id="negative-index"),
        pytest.param({"a.b": 2}, "a", KeyError, id="missing"),
        pytest.param({"items": []}, "items.0", KeyError, id="index-out-of-range"),
        pytest.param({"s": "text"}, "s.0", KeyError, id="no-indexing-into-strings"),
    ],
)
def test_field_paths(document, path, expected):
    if expected is KeyError:
        with pytest.raises(KeyError):
            field_value(document, path)
    else:
        assert field_value(document, path) == expected


def test_equality_on_text_fields():
    condition = Condition(field="status", comparison="==", value="SETTLED")

    assert condition.evaluate({"status": "SETTLED"}).met
    assert not condition.evaluate({"status": "PENDING"}).met


def test_a_missing_field_is_a_configuration_error_naming_the_fields_there_are():
    with pytest.raises(ConfigurationError, match="no field 'availble'.*available, currency") as caught:
        Condition(field="availble", comparison=">=", value="1").evaluate(BALANCE)
    assert caught.value.field == "condition"


def test_an_ordering_comparison_on_text_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="not a number"):
        Condition(field="currency", comparison=">=", value="1").evaluate(BALANCE)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"field": "a", "comparison": "=>", "value": 1}, id="unknown-comparison"),
        pytest.param({"comparison": ">=", "value": 1}, id="comparison-without-field"),
        pytest.param({"field": "a", "comparison": ">=", "value": "lots"}, id="threshold-not-a-number"),
        pytest.param({"field": "a", "comparison": ">=", "value": True}, id="threshold-a-bool"),
        pytest.param({"check": "no_dots"}, id="check-not-a-dotted-path"),
    ],
)
def test_conditions_are_validated_when_made(kwargs):
    with pytest.raises(ConfigurationError):
        Condition(**kwargs)


def test_a_check_function_by_dotted_path_and_both_parts_must_hold():
    # operator.truth is importable everywhere, like a user's function in an installed package.
    condition = Condition(field="available", comparison=">=", value="1", check="operator.truth")

    assert condition.evaluate(BALANCE).met
    assert not condition.evaluate({"available": "5"}, check=lambda response: False).met
    assert not Condition(check="operator.truth").evaluate({}).met
    assert Condition().evaluate({}).met  # no condition: any answer ends the wait


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("nowhere_at_all.check", id="no-module"),
        pytest.param("operator.no_such_function", id="no-attribute"),
        pytest.param("math.pi", id="not-callable"),
        pytest.param("no_dot_at_all", id="not-a-dotted-path"),
    ],
)
def test_a_check_that_cannot_be_imported_is_a_configuration_error(path):
    with pytest.raises(ConfigurationError, match=path.replace(".", r"\.")):
        import_check(path)


def test_a_condition_travels_as_plain_values():
    condition = Condition(field="available", comparison=">=", value="1500.00", check="operator.truth")

    assert Condition.from_dict(condition.to_dict()) == condition
    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in condition.to_dict().values())


@pytest.mark.parametrize(
    ("error", "ends"),
    [
        pytest.param(InvalidCredentialsError("401", status_code=401), True, id="invalid-credentials"),
        pytest.param(InvalidClientCertificateError("401", status_code=401), True, id="invalid-certificate"),
        pytest.param(ForbiddenError("403", status_code=403), True, id="forbidden"),
        pytest.param(ConfigurationError("bad"), True, id="configuration"),
        pytest.param(ClientIdentityError("bad key"), True, id="client-identity"),
        pytest.param(TokenResponseError("no token"), True, id="unusable-token-answer"),
        pytest.param(ApiError("404", status_code=404), True, id="not-found"),
        pytest.param(TlsHandshakeError("x", client_certificate_rejected=True), True, id="tls-cert-rejected"),
        pytest.param(TlsHandshakeError("x", verify_code=19), True, id="tls-server-untrusted"),
        pytest.param(TlsHandshakeError("reset"), False, id="tls-reset"),
        pytest.param(RateLimitedError("429", status_code=429, retry_after=3), False, id="rate-limited"),
        pytest.param(ServerError("503", status_code=503), False, id="server-error"),
        pytest.param(ConnectionFailedError("refused"), False, id="no-answer"),
        pytest.param(ApiError("408", status_code=408), False, id="request-timeout"),
    ],
)
def test_which_errors_end_the_wait(error, ends):
    assert error.transient is not ends


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [
        pytest.param(0, None, 10.0, id="all-well"),
        pytest.param(1, None, 20.0, id="one-failure-doubles"),
        pytest.param(3, None, 80.0, id="three-failures"),
        pytest.param(10, None, 300.0, id="capped"),
        pytest.param(1, 120.0, 120.0, id="retry-after-longer"),
        pytest.param(1, 2.0, 20.0, id="retry-after-shorter"),
        pytest.param(0, 1.0, 10.0, id="retry-after-never-shortens-the-interval"),
    ],
)
def test_backoff(failures, retry_after, expected):
    wait = wait_before_next_poll(10, failures, backoff_max=300, retry_after=retry_after, jitter=lambda: 0.0)

    assert wait == expected


def test_the_cap_never_undercuts_the_interval():
    assert wait_before_next_poll(600, 5, backoff_max=60, jitter=lambda: 0.0) == 600


@given(
    interval=st.floats(min_value=0, max_value=3600, allow_nan=False),
    failures=st.integers(min_value=0, max_value=10_000),
    backoff_max=st.floats(min_value=0, max_value=86_400, allow_nan=False),
    retry_after=st.none() | st.floats(min_value=-10, max_value=86_400, allow_nan=False),
    jitter=st.floats(min_value=0, max_value=0.999),
)
def test_the_wait_is_never_below_the_interval_and_never_above_the_larger_of_cap_and_retry_after(
    interval, failures, backoff_max, retry_after, jitter
):
    wait = wait_before_next_poll(
        interval, failures, backoff_max=backoff_max, retry_after=retry_after, jitter=lambda: jitter
    )

    bound = max(interval, backoff_max) * 1.1
    if retry_after is not None:
        bound = max(bound, retry_after)
    assert interval <= wait <= bound + 1e-9


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            InvalidCredentialsError(
                "POST /auth/token-v2 answered 401",
                status_code=401,
                bank_reason="Invalid Credentials",
                hint="h1",
            ),
            id="api-error",
        ),
        pytest.param(
            TlsHandshakeError("handshake failed", hint="h2", client_certificate_rejected=True), id="tls"
        ),
        pytest.param(ConfigurationError("no field", field="condition", hint="h3"), id="configuration"),
    ],
)
def test_error_events_come_back_as_the_same_type_with_reason_and_hint(error):
    payload = error_payload(error, polls=1)
    again = error_from_payload(payload)

    assert type(again) is type(error)
    assert again.hint == error.hint
    assert error.message in again.message
    if getattr(error, "bank_reason", None):
        assert again.bank_reason == "Invalid Credentials"
        assert again.status_code == 401


def test_an_error_event_of_a_check_function_that_raised():
    again = error_from_payload(error_payload(KeyError("items"), polls=2, hint="The check function raised."))

    assert type(again).__name__ == "BankingApiError"
    assert "KeyError" in str(again)
    assert "check function" in again.hint


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_quiet_polls_are_debug_with_a_summary_at_info_every_interval():
    clock = Clock()
    wait_log = WaitLog(600, clock=clock)
    levels = []
    for _ in range(100):  # a poll every 10 s for 1,000 s
        clock.now += 10
        levels.append(wait_log.waiting())

    assert levels.count(logging.INFO) == 1  # at 600 s; the next is due at 1,200 s
    assert levels[59] == logging.INFO
    assert set(levels) == {logging.DEBUG, logging.INFO}


def test_the_first_transient_error_of_a_run_warns_the_rest_are_debug_and_the_answer_after_says_so():
    clock = Clock()
    wait_log = WaitLog(600, clock=clock)

    assert [wait_log.failed() for _ in range(3)] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert wait_log.failures == 3
    assert wait_log.recovered() == 3
    assert wait_log.recovered() == 0  # the next answer is quiet again
    assert wait_log.failed() == logging.WARNING  # a new run of errors is a new change

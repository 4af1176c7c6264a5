"""The retry policy as pure decisions and as an immutable urllib3 Retry value: no sockets here."""

from __future__ import annotations

import email.utils
import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import HTTPResponse

from airflow_provider_bankapi.client.transport.retry import (
    RETRY_AFTER_CEILING,
    BankRetry,
    backoff_time,
    failure_kind,
    may_retry_failure,
    may_retry_status,
    next_wait,
    parse_retry_after,
)

NOW = 1_700_000_000.0


# -- may this be retried? ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        pytest.param("GET", 429, True, id="get-429"),
        pytest.param("GET", 500, True, id="get-500"),
        pytest.param("GET", 502, True, id="get-502"),
        pytest.param("GET", 503, True, id="get-503"),
        pytest.param("GET", 504, True, id="get-504"),
        pytest.param("get", 503, True, id="lowercase-method"),
        pytest.param("PUT", 500, True, id="put-500"),
        pytest.param("DELETE", 502, True, id="delete-502"),
        pytest.param("HEAD", 504, True, id="head-504"),
        pytest.param("OPTIONS", 503, True, id="options-503"),
        pytest.param("POST", 429, True, id="post-429-refused-unprocessed"),
        pytest.param("POST", 503, True, id="post-503-refused-unprocessed"),
        pytest.param("GET", 529, True, id="get-529-site-overloaded"),
        pytest.param("POST", 529, True, id="post-529-refused-unprocessed-like-503"),
        pytest.param("POST", 500, False, id="post-500-may-have-run"),
        pytest.param("POST", 502, False, id="post-502"),
        pytest.param("POST", 504, False, id="post-504"),
        pytest.param("PATCH", 500, False, id="patch-500"),
        pytest.param("PATCH", 429, True, id="patch-429"),
        pytest.param("GET", 400, False, id="get-400"),
        pytest.param("GET", 401, False, id="get-401"),
        pytest.param("GET", 403, False, id="get-403"),
        pytest.param("GET", 404, False, id="get-404"),
        pytest.param("POST", 401, False, id="post-401"),
        pytest.param("GET", 501, False, id="get-501-not-transient"),
        pytest.param("GET", 200, False, id="get-200"),
    ],
)
def test_may_retry_status(method, status, expected):
    assert may_retry_status(method, status) is expected


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        pytest.param("POST", 502, True, id="post-502-reissues"),
        pytest.param("POST", 504, True, id="post-504-reissues"),
        pytest.param("post", 504, True, id="lowercase-method"),
        pytest.param("POST", 503, True, id="post-503"),
        pytest.param("POST", 429, True, id="post-429"),
        pytest.param("POST", 529, True, id="post-529"),
        pytest.param("POST", 500, False, id="post-500-still-not"),
        pytest.param("POST", 400, False, id="post-400"),
        pytest.param("POST", 401, False, id="post-401"),
    ],
)
def test_the_token_post_may_repeat_after_a_gateway_error(method, status, expected):
    assert may_retry_status(method, status, token_request=True) is expected


@pytest.mark.parametrize(
    ("method", "failure", "expected"),
    [
        pytest.param("GET", "connect", True, id="get-connect"),
        pytest.param("POST", "connect", True, id="post-connect-nothing-sent"),
        pytest.param("GET", "read", True, id="get-read"),
        pytest.param("DELETE", "read", True, id="delete-read"),
        pytest.param("POST", "read", False, id="post-read-may-have-run"),
        pytest.param("PATCH", "read", False, id="patch-read"),
        pytest.param("GET", "other", False, id="get-tls"),
        pytest.param("POST", "other", False, id="post-tls"),
    ],
)
def test_may_retry_failure(method, failure, expected):
    assert may_retry_failure(method, failure) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(ConnectTimeoutError("connect timed out"), "connect", id="connect-timeout"),
        pytest.param(NewConnectionError(None, "refused"), "connect", id="refused"),
        pytest.param(NameResolutionError("bank.invalid", None, OSError("no such host")), "connect", id="dns"),
        pytest.param(ProxyError("proxy", NewConnectionError(None, "refused")), "connect", id="proxy-refused"),
        pytest.param(ReadTimeoutError(None, "/x", "read timed out"), "read", id="read-timeout"),
        pytest.param(
            ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")), "read", id="drop"
        ),
        pytest.param(SSLError(ssl.SSLError(1, "alert")), "other", id="tls"),
        pytest.param(ProxyError("proxy", OSError("tunnel failed")), "other", id="proxy-other"),
    ],
)
def test_failure_kind(error, expected):
    assert failure_kind(error) == expected


# -- Retry-After ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("7", 7.0, id="seconds"),
        pytest.param("  12 ", 12.0, id="seconds-with-spaces"),
        pytest.param(email.utils.formatdate(NOW + 30, usegmt=True), 30.0, id="http-date-future"),
        pytest.param(email.utils.formatdate(NOW - 30, usegmt=True), 0.0, id="http-date-past"),
        pytest.param("Wed, 21 Oct 2015 07:28:00", None, id="http-date-without-zone"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("", None, id="empty"),
        pytest.param("-5", None, id="negative"),
        pytest.param("1.5", None, id="fraction-not-delay-seconds"),
        pytest.param("9" * 40, RETRY_AFTER_CEILING, id="huge-seconds-capped"),
        pytest.param(
            email.utils.formatdate(NOW + 10 * 365 * 86400, usegmt=True), RETRY_AFTER_CEILING, id="far-date"
        ),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


@given(st.text(max_size=60))
def test_parse_retry_after_never_raises_and_stays_in_range(value):
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or 0.0 <= seconds <= RETRY_AFTER_CEILING


BANK_AHEAD = NOW + 300.0  # the bank's clock, five minutes ahead of the worker's (NOW)


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        pytest.param(
            email.utils.formatdate(BANK_AHEAD + 1, usegmt=True),
            email.utils.formatdate(BANK_AHEAD, usegmt=True),
            1.0,
            id="date-present-bank-ahead",
        ),
        pytest.param(
            email.utils.formatdate(NOW - 300 + 1, usegmt=True),
            email.utils.formatdate(NOW - 300, usegmt=True),
            1.0,
            id="date-present-bank-behind",
        ),
        pytest.param(
            email.utils.formatdate(BANK_AHEAD + 1, usegmt=True), None, 301.0, id="date-absent-worker-clock"
        ),
        pytest.param(
            email.utils.formatdate(BANK_AHEAD + 1, usegmt=True), "soon", 301.0, id="date-garbage-worker-clock"
        ),
        pytest.param(
            email.utils.formatdate(BANK_AHEAD + 1, usegmt=True),
            "Wed, 21 Oct 2015 07:28:00",
            301.0,
            id="date-without-zone-worker-clock",
        ),
        pytest.param(
            email.utils.formatdate(BANK_AHEAD - 30, usegmt=True),
            email.utils.formatdate(BANK_AHEAD, usegmt=True),
            0.0,
            id="retry-after-before-the-date-is-now",
        ),
        pytest.param(
            "7", email.utils.formatdate(BANK_AHEAD, usegmt=True), 7.0, id="delay-seconds-ignore-date"
        ),
        pytest.param("soon", email.utils.formatdate(BANK_AHEAD, usegmt=True), None, id="garbage-with-date"),
        pytest.param(
            email.utils.formatdate(BANK_AHEAD + 10 * 365 * 86400, usegmt=True),
            email.utils.formatdate(BANK_AHEAD, usegmt=True),
            RETRY_AFTER_CEILING,
            id="far-date-capped",
        ),
    ],
)
def test_parse_retry_after_reads_a_date_against_the_answers_date(value, date, expected):
    assert parse_retry_after(value, now=NOW, date=date) == expected


@given(st.text(max_size=60), st.one_of(st.none(), st.text(max_size=60)))
def test_parse_retry_after_with_any_date_never_raises_and_stays_in_range(value, date):
    seconds = parse_retry_after(value, now=NOW, date=date)
    assert seconds is None or 0.0 <= seconds <= RETRY_AFTER_CEILING


# -- how long to wait -----------------------------------------------------------------------------


def _recording_uniform(calls):
    def uniform(low, high):
        calls.append((low, high))
        return high  # the top of the window: the largest wait the policy allows

    return uniform


@pytest.mark.parametrize(
    ("retry_number", "window"),
    [
        pytest.param(0, 0.5, id="first-retry-base"),
        pytest.param(1, 1.0, id="second-doubles"),
        pytest.param(3, 4.0, id="fourth"),
        pytest.param(6, 30.0, id="capped-at-max"),
        pytest.param(10_000, 30.0, id="huge-retry-number-no-overflow"),
    ],
)
def test_backoff_time_is_full_jitter_over_a_doubling_window(retry_number, window):
    calls = []
    wait = backoff_time(retry_number, base=0.5, maximum=30.0, uniform=_recording_uniform(calls))
    assert calls == [(0.0, window)]
    assert wait == window


@given(st.integers(min_value=0, max_value=200), st.floats(0, 10), st.floats(0, 100))
def test_backoff_time_with_real_randomness_stays_in_its_window(retry_number, base, maximum):
    wait = backoff_time(retry_number, base=base, maximum=maximum)
    assert 0.0 <= wait <= min(maximum, base * 2.0 ** min(retry_number, 64))


@pytest.mark.parametrize(
    ("retry_after", "waited", "expected"),
    [
        pytest.param(None, 0.0, 0.5, id="backoff-when-no-retry-after"),
        pytest.param(3.0, 0.0, 3.0, id="retry-after-honoured-as-given"),
        pytest.param(0.0, 0.0, 0.0, id="retry-after-zero"),
        pytest.param(9.0, 2.0, 9.0, id="retry-after-within-budget"),
        pytest.param(9.0, 2.0001, None, id="retry-after-would-pass-budget"),
        pytest.param(3600.0, 0.0, None, id="retry-after-beyond-budget-gives-up-at-once"),
        pytest.param(None, 10.6, None, id="backoff-would-pass-budget"),
    ],
)
def test_next_wait_respects_the_total_budget(retry_after, waited, expected):
    wait = next_wait(
        retry_number=0,
        retry_after=retry_after,
        waited=waited,
        base=0.5,
        maximum=30.0,
        max_total_wait=11.0,
        uniform=lambda low, high: high,
    )
    assert wait == expected


# -- BankRetry: the value urllib3 drives -------------------------------------------------------------


def _response(status, retry_after=None, date=None):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    if date is not None:
        headers["Date"] = date
    return HTTPResponse(body=b"", headers=headers, status=status, preload_content=False)


def _policy(**options):
    sleeps = []
    options.setdefault("uniform", lambda low, high: high)
    options.setdefault("clock", lambda: NOW)
    policy = BankRetry(sleep=sleeps.append, **options)
    return policy, sleeps


def test_increment_returns_a_new_value_and_leaves_the_old_one_alone():
    policy, _ = _policy(max_retries=3, backoff_base=0.5)
    following = policy.increment("GET", "/x", response=_response(503))
    assert following is not policy
    assert (policy.total, policy.waited, policy.planned_wait, len(policy.history)) == (3, 0.0, 0.0, 0)
    assert (following.total, following.waited, following.planned_wait) == (2, 0.5, 0.5)
    assert len(following.history) == 1


def test_waits_accumulate_and_double():
    policy, sleeps = _policy(max_retries=5, backoff_base=0.5, backoff_max=30)
    for _ in range(3):
        policy = policy.increment("GET", "/x", response=_response(500))
        policy.sleep()
    assert sleeps == [0.5, 1.0, 2.0]
    assert policy.waited == 3.5


def test_retry_after_replaces_the_backoff():
    policy, sleeps = _policy(max_retries=3)
    policy = policy.increment("GET", "/x", response=_response(429, "4"))
    policy.sleep(_response(429, "4"))
    assert sleeps == [4.0]


def test_retry_after_as_http_date_uses_the_injected_clock():
    policy, _ = _policy(max_retries=3)
    policy = policy.increment(
        "GET", "/x", response=_response(503, email.utils.formatdate(NOW + 8, usegmt=True))
    )
    assert policy.planned_wait == 8.0


def test_retry_after_as_http_date_is_read_against_the_answers_date():
    policy, _ = _policy(max_retries=3, max_total_wait=120.0)
    answer = _response(
        429,
        email.utils.formatdate(BANK_AHEAD + 1, usegmt=True),
        date=email.utils.formatdate(BANK_AHEAD, usegmt=True),
    )
    assert policy.get_retry_after(answer) == 1.0
    assert policy.increment("GET", "/x", response=answer).planned_wait == 1.0


def test_retry_after_as_http_date_without_a_readable_date_uses_the_clock_and_the_budget():
    policy, _ = _policy(max_retries=3, max_total_wait=120.0)
    answer = _response(429, email.utils.formatdate(BANK_AHEAD + 1, usegmt=True), date="yesterday")
    assert policy.get_retry_after(answer) == 301.0
    with pytest.raises(MaxRetryError):  # 301 s passes the 120 s budget: given up at once
        policy.increment("GET", "/x", response=answer)


def test_exhausted_after_max_retries():
    policy, _ = _policy(max_retries=2, backoff_base=0.0)
    policy = policy.increment("GET", "/x", response=_response(503))
    policy = policy.increment("GET", "/x", response=_response(503))
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=_response(503))


def test_stops_when_the_next_wait_would_pass_the_budget():
    policy, sleeps = _policy(max_retries=10, max_total_wait=5.0)
    policy = policy.increment("GET", "/x", response=_response(429, "3"))
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=_response(429, "3"))
    assert sleeps == []


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        pytest.param("POST", 500, False, id="post-500"),
        pytest.param("POST", 503, True, id="post-503"),
        pytest.param("GET", 500, True, id="get-500"),
        pytest.param("GET", 401, False, id="get-401"),
    ],
)
def test_is_retry_follows_the_pure_rule(method, status, expected):
    policy, _ = _policy()
    assert policy.is_retry(method, status, has_retry_after=True) is expected


@pytest.mark.parametrize(
    ("method", "error"),
    [
        pytest.param("POST", ProtocolError("Connection aborted.", ConnectionResetError()), id="post-dropped"),
        pytest.param("POST", ReadTimeoutError(None, "/x", "read timed out"), id="post-read-timeout"),
        pytest.param("GET", SSLError(ssl.SSLError(1, "alert")), id="get-tls-failure"),
    ],
)
def test_unsafe_failures_are_raised_at_once(method, error):
    policy, _ = _policy(max_retries=5)
    with pytest.raises(type(error)):
        policy.increment(method, "/x", error=error)


@pytest.mark.parametrize(
    ("method", "error"),
    [
        pytest.param("POST", NewConnectionError(None, "refused"), id="post-refused"),
        pytest.param("GET", ProtocolError("Connection aborted.", ConnectionResetError()), id="get-dropped"),
        pytest.param("GET", ReadTimeoutError(None, "/x", "read timed out"), id="get-read-timeout"),
    ],
)
def test_safe_failures_are_retried(method, error):
    policy, _ = _policy(max_retries=5, backoff_base=0.25)
    following = policy.increment(method, "/x", error=error)
    assert following.total == 4
    assert following.planned_wait == 0.25


TOKEN_PATH = "/public/gw_banking/v1/auth/token-v2"


@pytest.mark.parametrize("status", [pytest.param(502, id="502"), pytest.param(504, id="504")])
def test_the_token_post_is_retried_after_a_gateway_error(status):
    policy, sleeps = _policy(max_retries=3, backoff_base=0.5, token_path=TOKEN_PATH)
    assert policy.is_retry("POST", status)
    following = policy.increment("POST", TOKEN_PATH, response=_response(status))
    following.sleep()
    assert (following.total, len(following.history), sleeps) == (2, 1, [0.5])


@pytest.mark.parametrize(
    ("method", "url", "token_path"),
    [
        pytest.param("POST", "/public/gw_banking/v1/accounts", TOKEN_PATH, id="another-post"),
        pytest.param("POST", TOKEN_PATH + "-v3", TOKEN_PATH, id="a-longer-path"),
        pytest.param("POST", TOKEN_PATH, None, id="token-path-unknown"),
        pytest.param("PATCH", TOKEN_PATH, TOKEN_PATH, id="not-a-post"),
    ],
)
def test_only_the_token_post_is_retried_after_a_gateway_error(method, url, token_path):
    policy, sleeps = _policy(max_retries=3, token_path=token_path)
    with pytest.raises(MaxRetryError):  # urllib3 then hands the 502 back as it is
        policy.increment(method, url, response=_response(502))
    assert sleeps == []


def test_new_keeps_every_setting():
    policy, _ = _policy(
        max_retries=4, backoff_base=0.1, backoff_max=2.0, max_total_wait=9.0, token_path=TOKEN_PATH
    )
    copy = policy.new()
    assert (copy.total, copy.backoff_base, copy.backoff_max, copy.max_total_wait) == (4, 0.1, 2.0, 9.0)
    assert copy.token_path == TOKEN_PATH
    assert copy.raise_on_status is False
    assert copy._sleep is policy._sleep
    assert copy._uniform is policy._uniform
    assert copy._clock is policy._clock


def test_zero_retries_gives_up_at_the_first_failure():
    policy, _ = _policy(max_retries=0)
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", response=_response(503))

"""When to retry a call to the bank, and how long to wait first.

The bank documents no rate limits and no server errors (docs/bank-contract.md), so 429 and 5xx are treated
as transient: retried with exponential backoff and full jitter, honouring ``Retry-After``, bounded
in attempts and in total wait. What may be retried depends on whether repeating the request is
safe:

=========================================  =====================  ==========================
failure                                    idempotent methods     POST (the token call...)
=========================================  =====================  ==========================
connect error (refused, connect timeout)   retried                retried (nothing was sent)
read error (dropped, read timeout)         retried                never (it may have run)
429, 503, 529                              retried                retried (the bank refused
                                                                  the request, it did not run)
502, 504                                   retried                the token POST only (asking
                                                                  again only issues another
                                                                  token); others never
500                                        retried                never (it may have run)
400, 401, 403, 404, any other status       never                  never
TLS failure (untrusted server, rejected    never                  never
client certificate)
=========================================  =====================  ==========================

The pure functions below answer one question each and are tested without sockets;
:class:`BankRetry` plugs them into urllib3's retry loop as an immutable value (urllib3 makes a new
one for every attempt, see ``increment``).
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.util.retry import Retry
from urllib3.util.util import reraise

from airflow_provider_bankapi.client.fields import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_TOTAL_WAIT,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

    from airflow_provider_bankapi.client.settings import TransportSettings

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# 529 "Site is overloaded" is no standard status, but Open Finance gateways send it for what 503 means.
SITE_OVERLOADED = 529
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, SITE_OVERLOADED})
# 429 (RFC 6585), 503 and 529 say the server refused the request without acting on it: safe for any
# method.
NOT_PROCESSED_STATUSES = frozenset({429, 503, SITE_OVERLOADED})
# A gateway's 502/504 may hide a request that ran. For the client-credentials token POST that is
# harmless: running it twice only issues a second token, and the first is simply never used.
TOKEN_REISSUE_STATUSES = frozenset({502, 504})
# A Retry-After beyond a day is nonsense for an API call; the cap only keeps arithmetic sane (the
# total-wait budget decides whether it is honoured at all).
RETRY_AFTER_CEILING = 86_400.0

Failure = Literal["connect", "read", "other"]

_DIGITS = re.compile(r"\s*(\d+)\s*")


def may_retry_status(method: str, status: int, *, token_request: bool = False) -> bool:
    """May a request with this method be sent again after this status?

    :param token_request: True for the POST that asks the token endpoint for a token.
    """
    if status not in RETRY_STATUSES:
        return False
    if token_request and method.upper() == "POST" and status in TOKEN_REISSUE_STATUSES:
        return True
    return method.upper() in IDEMPOTENT_METHODS or status in NOT_PROCESSED_STATUSES


def may_retry_failure(method: str, failure: Failure) -> bool:
    """May a request with this method be sent again after a failure of this kind (no HTTP answer)?"""
    if failure == "connect":
        return True  # the request never left: repeating it cannot run it twice
    if failure == "read":
        return method.upper() in IDEMPOTENT_METHODS
    return False  # TLS failures and the unknown: repeating will not help, or may harm


def failure_kind(error: BaseException) -> Failure:
    """Which kind of failure urllib3 reported: before sending (connect), after (read), or other."""
    if isinstance(error, ProxyError):
        error = error.original_error
    if isinstance(error, ConnectTimeoutError):  # NewConnectionError (refused, DNS) is a subclass
        return "connect"
    if isinstance(error, (ReadTimeoutError, ProtocolError)):
        return "read"
    return "other"  # urllib3's SSLError among them: a TLS failure is never retried


def parse_retry_after(value: str | None, *, now: float, date: str | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 10.2.3): delay-seconds or an HTTP date.

    An HTTP date is the origin's clock, and so is the answer's ``Date`` (RFC 9110 6.6.1): read one
    against the other, a bank clock minutes off the worker's still means the wait the bank meant.

    :param value: the header's value, or None when absent.
    :param now: the current time (epoch seconds), for HTTP dates when ``date`` is absent or unreadable.
    :param date: the answer's ``Date`` header, or None when absent.
    :returns: seconds in ``[0, RETRY_AFTER_CEILING]``, or None when absent or unreadable.
    """
    if value is None:
        return None
    match = _DIGITS.fullmatch(value)
    if match:
        # Counted before converting: Python refuses to read an int of more than 4,300 digits, and any
        # number longer than the ceiling's is above it.
        digits = match.group(1).lstrip("0") or "0"
        ceiling = int(RETRY_AFTER_CEILING)
        seconds = float(ceiling if len(digits) > len(str(ceiling)) else min(int(digits), ceiling))
    else:
        moment = http_date(value)
        if moment is None:
            return None
        origin_now = http_date(date)
        seconds = moment - (now if origin_now is None else origin_now)
    return min(max(seconds, 0.0), RETRY_AFTER_CEILING)


def http_date(value: str | None) -> float | None:
    """Epoch seconds of an HTTP date (RFC 9110 5.6.7), or None when absent, unreadable or zone-less."""
    if value is None:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less date is read as such
        return None
    return moment.timestamp()


def backoff_time(
    retry_number: int,
    *,
    base: float,
    maximum: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Full-jitter exponential backoff: ``uniform(0, min(maximum, base * 2**retry_number))``.

    Full jitter spreads clients that failed together across the whole window, so they do not
    come back in lockstep (the AWS architecture blog's "Exponential Backoff and Jitter").

    :param retry_number: 0 for the first retry, 1 for the second...
    :param base: the window of the first retry, in seconds.
    :param maximum: the largest window, in seconds.
    :param uniform: the random source (``random.uniform``); a seam for tests.
    """
    # min() before the power would overflow: 2**retry_number is bounded by the cap's exponent.
    exponent = min(retry_number, 64)
    return float(uniform(0.0, min(maximum, base * 2.0**exponent)))


def next_wait(
    *,
    retry_number: int,
    retry_after: float | None,
    waited: float,
    base: float,
    maximum: float,
    max_total_wait: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float | None:
    """How long to wait before the next attempt, or None when that wait would pass the budget.

    The bank's ``Retry-After`` is honoured as given (an earlier retry would only be refused again);
    when it asks for more than the budget has left, the call gives up at once instead of waiting
    in vain, and the caller sees the bank's advice on the error.

    :param retry_number: 0 for the first retry.
    :param retry_after: the bank's ``Retry-After`` in seconds, or None.
    :param waited: seconds already spent waiting between earlier attempts of this call.
    :param base: backoff window of the first retry.
    :param maximum: largest backoff window.
    :param max_total_wait: budget for all waits of one call, in seconds.
    :param uniform: the random source.
    """
    wait = (
        retry_after
        if retry_after is not None
        else backoff_time(retry_number, base=base, maximum=maximum, uniform=uniform)
    )
    if waited + wait > max_total_wait:
        return None
    return wait


class BankRetry(Retry):
    """urllib3's retry loop driven by this module's rules: an immutable value, one per attempt.

    :param max_retries: retries after the first attempt (urllib3's ``total``).
    :param backoff_base: first backoff window, in seconds.
    :param backoff_max: largest backoff window, in seconds.
    :param max_total_wait: budget for all waits of one call, in seconds.
    :param token_path: the token endpoint's URL path, whose POST may be repeated after 502/504.
    :param waited: seconds waited so far in this call (set by ``increment``).
    :param planned_wait: the wait before the attempt this value is for (set by ``increment``).
    :param uniform: random source for the jitter.
    :param clock: time source for HTTP-date ``Retry-After`` values when the answer has no ``Date``.
    :param sleep: how to wait.
    """

    def __init__(
        self,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        max_total_wait: float = DEFAULT_MAX_TOTAL_WAIT,
        token_path: str | None = None,
        waited: float = 0.0,
        planned_wait: float = 0.0,
        uniform: Callable[[float, float], float] = random.uniform,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        **urllib3_options: Any,
    ) -> None:
        urllib3_options.setdefault("total", max_retries)
        # requests follows redirects itself (it calls urlopen with redirect=False).
        urllib3_options.setdefault("redirect", 0)
        # Hand the last 429/5xx back instead of raising: raise_for_bank_status turns it into
        # RateLimitedError/ServerError with the status, the body excerpt and Retry-After.
        urllib3_options.setdefault("raise_on_status", False)
        urllib3_options.setdefault("allowed_methods", IDEMPOTENT_METHODS)
        urllib3_options.setdefault("status_forcelist", RETRY_STATUSES)
        super().__init__(backoff_max=backoff_max, **urllib3_options)
        self.backoff_base = backoff_base
        self.max_total_wait = max_total_wait
        self.token_path = token_path
        self.waited = waited
        self.planned_wait = planned_wait
        self._uniform = uniform
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: TransportSettings, *, token_path: str | None = None) -> BankRetry:
        """The retry policy of one call (a fresh value; urllib3 derives one per attempt).

        :param settings: the connection's retries, backoff and budget.
        :param token_path: the token endpoint's URL path: its POST may be repeated after 502/504.
        """
        return cls(
            settings.max_retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            max_total_wait=settings.max_total_wait,
            token_path=token_path,
        )

    def new(self, **kw: Any) -> BankRetry:
        # urllib3 copies its own fields (backoff_factor, backoff_jitter, retry_after_max... whatever its
        # version has); this class adds its own, as urllib3 asks of a subclass.
        kw.setdefault("backoff_base", self.backoff_base)
        kw.setdefault("max_total_wait", self.max_total_wait)
        kw.setdefault("token_path", self.token_path)
        kw.setdefault("waited", self.waited)
        kw.setdefault("planned_wait", self.planned_wait)
        kw.setdefault("uniform", self._uniform)
        kw.setdefault("clock", self._clock)
        kw.setdefault("sleep", self._sleep)
        return super().new(**kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        # urllib3 does not pass the URL here: a status only the token POST may repeat passes this
        # first gate when a token path is known, and increment() decides on the URL.
        return may_retry_status(method, status_code, token_request=self.token_path is not None)

    def is_token_request(self, method: str | None, url: str | None) -> bool:
        """Is this the POST that asks the token endpoint for a token?"""
        return (
            self.token_path is not None
            and (method or "").upper() == "POST"
            and urlsplit(url or "").path == self.token_path
        )

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> BankRetry:
        if error is not None and not may_retry_failure(method or "", failure_kind(error)):
            raise reraise(type(error), error, _stacktrace)
        if response is not None and not may_retry_status(
            method or "", response.status, token_request=self.is_token_request(method, url)
        ):  # only the token POST may repeat this status: hand the answer back as it is
            raise MaxRetryError(_pool, url or "", _response_error(response))  # type: ignore[arg-type]
        counted = super().increment(method, url, response, error, _pool, _stacktrace)  # may be exhausted
        retry_after = None
        if response is not None and self.respect_retry_after_header:
            retry_after = self.get_retry_after(response)
        wait = next_wait(
            retry_number=len(counted.history) - 1,
            retry_after=retry_after,
            waited=self.waited,
            base=self.backoff_base,
            maximum=self.backoff_max,
            max_total_wait=self.max_total_wait,
            uniform=self._uniform,
        )
        if wait is None:  # the next wait would pass the budget: stop here, as if exhausted
            reason = error or _response_error(response)
            raise MaxRetryError(_pool, url or "", reason) from reason  # type: ignore[arg-type]
        return counted.new(waited=self.waited + wait, planned_wait=wait)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        # urllib3's own reading raises on an unreadable value and reads a date on this machine's
        # clock; this one ignores the unreadable and reads a date against the answer's Date.
        headers = response.headers
        return parse_retry_after(headers.get("Retry-After"), now=self._clock(), date=headers.get("Date"))

    def get_backoff_time(self) -> float:
        return self.planned_wait

    def sleep_for_retry(self, response: BaseHTTPResponse) -> bool:
        # Only urllib3's redirect path calls this; requests never lets urllib3 redirect. The wait
        # chosen in increment() (Retry-After included) is the only one.
        return False

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        if self.planned_wait > 0:
            self._sleep(self.planned_wait)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(total={self.total}, waited={self.waited:.3f}, "
            f"planned_wait={self.planned_wait:.3f}, max_total_wait={self.max_total_wait})"
        )


def _response_error(response: BaseHTTPResponse | None) -> Exception:
    status = response.status if response is not None else None
    return ResponseError(ResponseError.SPECIFIC_ERROR.format(status_code=status))

"""What a wait on the Banking API decides, shared by the sensors and the trigger: pure, no Airflow, no I/O.

- :class:`Condition`: when is a response good enough? A field compared with a plain value (as
  ``Decimal`` when both sides are numbers: money is never a float here), and/or an importable check
  function named by its dotted path. Only plain values, so a condition survives the trip to the
  triggerer (a lambda cannot be serialized; a dotted path can be imported there).
- :func:`wait_before_next_poll`: how long to wait before the next poll. Never less than the poke
  interval, whatever happened: a trigger that re-polls a 401 at once hammers the bank with thousands of
  calls a second, which is the bug this prevents.
- :class:`WaitLog`: which poll deserves a line at INFO. A quiet poll is logged at DEBUG: in the
  triggerer every log line travels from the trigger runner to its supervisor and wakes it, so a line per
  poll of a thousand sensors keeps a core busy and writes gigabytes a day.

Which errors end a wait is the error's own ``transient`` (:mod:`airflow_provider_bankapi.errors`), unless
the condition's ``waiting_statuses`` names the status the bank answered: a resource that answers 404 until
it exists (a statement not yet ready) is a "not yet", an unmet condition like any other.
"""

from __future__ import annotations

import logging
import math
import operator
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_bankapi.errors import (
    ApiError,
    BankingApiError,
    ConfigurationError,
    ForbiddenError,
    InvalidClientCertificateError,
    InvalidCredentialsError,
)

COMPARISONS: Mapping[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_ORDERING = frozenset({">=", ">", "<=", "<"})
PlainValue = str | int | float | bool | None
#: Statuses no sensor may wait on, and why: a refusal of the credential (waiting cannot fix it, and
#: polling with it looks like an attack), or a status the wait already outlasts as transient.
_NOT_WAITING_STATUSES = {
    401: "a refusal of the credential (Invalid Credentials or Invalid Client Certificate)",
    403: "a refusal of the credential (its source IP is not on its allowlist)",
    495: "a gateway's refusal of the client certificate",
    496: "a gateway's refusal of the client certificate",
    408: "already transient: the wait backs off and polls again",
    425: "already transient: the wait backs off and polls again",
    429: "already transient: the wait backs off and polls again",
}
#: The errors whose status stays a refusal whatever ``waiting_statuses`` says (a gateway may answer 400).
_CREDENTIAL_REFUSALS = (InvalidCredentialsError, InvalidClientCertificateError, ForbiddenError)


def checked_waiting_statuses(statuses: Any) -> tuple[int, ...]:
    """``statuses`` as a sorted tuple of the 4xx HTTP statuses a wait may go on after, else a
    ConfigurationError naming the status and why it cannot be waited on.
    """
    if statuses is None:
        return ()
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, (Sequence, set, frozenset)):
        raise _waiting_error(f"waiting_statuses must be a tuple such as (404,); got {statuses!r}.")
    for status in statuses:
        if isinstance(status, bool) or not isinstance(status, int):
            raise _waiting_error(f"waiting_statuses holds {status!r}: statuses are numbers, e.g. (404,).")
        if status in _NOT_WAITING_STATUSES:
            raise _waiting_error(f"waiting_statuses cannot hold {status}: {_NOT_WAITING_STATUSES[status]}.")
        if not 400 <= status <= 499:
            why = "a 5xx is already transient" if 500 <= status <= 599 else "it is not a refusal"
            raise _waiting_error(f"waiting_statuses cannot hold {status}: 4xx statuses only ({why}).")
    return tuple(sorted(set(statuses)))


def _waiting_error(message: str) -> ConfigurationError:
    return ConfigurationError(
        message,
        field="waiting_statuses",
        hint="Name the statuses the bank answers while the resource is not ready yet, such as (404,).",
    )


def _condition_error(message: str, hint: str = "") -> BankingApiError:
    # A ConfigurationError: the sensor's arguments are wrong, waiting longer cannot help.
    return ConfigurationError(message, field="condition", hint=hint)


def as_decimal(value: Any) -> Decimal | None:
    """``value`` as a Decimal, or None when it is no number (booleans are not numbers here).

    Floats go through ``repr`` so that ``0.1`` means 0.1, not its binary approximation.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def field_value(document: Any, path: str) -> Any:
    """The value at a dotted path (``"available"``, ``"items.0.status"``) of a JSON document.

    :raises KeyError: when the path does not exist in the document.
    """
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, Sequence) and not isinstance(current, str) and part.lstrip("-").isdigit():
            try:
                current = current[int(part)]
            except IndexError:
                raise KeyError(path) from None
        else:
            raise KeyError(path)
    return current


def import_check(dotted_path: str) -> Callable[[Any], Any]:
    """The function named ``"package.module.function"`` (importable wherever the check runs)."""
    from airflow.sdk.module_loading import import_string  # type: ignore[attr-defined]  # re-exported there

    try:
        function = import_string(dotted_path)
    except ImportError as exc:  # also a path with no dot, and a module without that name
        raise _condition_error(
            f"check {dotted_path!r} cannot be imported: {type(exc).__name__}: {exc}",
            hint="A dotted path such as 'my_package.checks.funds_arrived', to a function in a module "
            "importable by the workers and the triggerer (a package on their Python path, not the DAG file).",
        ) from exc
    if not callable(function):
        raise _condition_error(f"check {dotted_path!r} is not callable.")
    return function  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Outcome:
    """One evaluation: was the condition met, and the value observed (the field's, else the response)."""

    met: bool
    observed: Any


@dataclass(frozen=True)
class Condition:
    """When a response ends the wait. With neither a field comparison nor a check, any 2xx answer does.

    :param field: dotted path of the field to look at (``"available"``); None for the whole response.
    :param comparison: one of ``>= > <= < == !=``; with ``field``, compares its value with ``value``.
    :param value: the plain value to compare with (a threshold as a string keeps its exact decimals).
    :param check: dotted path of a function ``(response_json) -> bool``; both must hold when both are set.
    :param waiting_statuses: 4xx statuses that mean "not yet": an answer with one of them is an unmet
        condition, not an error (see :func:`checked_waiting_statuses` for those refused).
    """

    field: str | None = None
    comparison: str | None = None
    value: PlainValue = None
    check: str | None = None
    waiting_statuses: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "waiting_statuses", checked_waiting_statuses(self.waiting_statuses))
        if self.comparison is not None and self.comparison not in COMPARISONS:
            raise _condition_error(f"comparison {self.comparison!r} is not one of {' '.join(COMPARISONS)}.")
        if self.comparison is not None and self.field is None:
            raise _condition_error("a comparison needs the field it compares (field='available', ...).")
        if self.comparison in _ORDERING and as_decimal(self.value) is None:
            raise _condition_error(
                f"comparison {self.comparison!r} needs a number to compare with; got {self.value!r}."
            )
        if self.field is not None and not self.field.strip():
            raise _condition_error("field must be a dotted path such as 'available'.")
        if self.check is not None and "." not in self.check:
            raise _condition_error(
                f"check {self.check!r} must be the dotted path of an importable function "
                "('my_package.checks.funds_arrived')."
            )

    def to_dict(self) -> dict[str, PlainValue | list[int]]:
        """Plain values only: what the trigger serializes (``waiting_statuses`` only when there are some, so
        that a condition without them serializes as it always did).
        """
        plain: dict[str, PlainValue | list[int]] = {
            "field": self.field,
            "comparison": self.comparison,
            "value": self.value,
            "check": self.check,
        }
        if self.waiting_statuses:
            plain["waiting_statuses"] = list(self.waiting_statuses)
        return plain

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        return cls(
            field=data.get("field"),
            comparison=data.get("comparison"),
            value=data.get("value"),
            check=data.get("check"),
            waiting_statuses=tuple(data.get("waiting_statuses") or ()),
        )

    def not_yet(self, error: BankingApiError) -> Outcome | None:
        """The unmet outcome of an answer refused with one of ``waiting_statuses`` (the observed value says
        the status), or None when ``error`` is one that ends or backs off the wait as usual.
        """
        status = getattr(error, "status_code", None)
        if not isinstance(error, ApiError) or isinstance(error, _CREDENTIAL_REFUSALS):
            return None
        if status not in self.waiting_statuses:
            return None
        return Outcome(met=False, observed=f"HTTP {status}, not yet")

    def describe(self) -> str:
        parts = []
        if self.comparison is not None:
            parts.append(f"{self.field} {self.comparison} {self.value}")
        if self.check is not None:
            parts.append(f"{self.check}(response) is true")
        return " and ".join(parts) or "the call succeeds"

    def evaluate(self, response: Any, check: Callable[[Any], Any] | None = None) -> Outcome:
        """Evaluate against one response.

        :param response: the decoded JSON of the answer.
        :param check: the already imported check function (else imported from ``self.check``).
        :raises ConfigurationError: the field is missing, or holds no number for an ordering comparison.
        """
        observed = response
        met = True
        if self.field is not None:
            try:
                observed = field_value(response, self.field)
            except KeyError:
                keys = ", ".join(sorted(map(str, response))) if isinstance(response, Mapping) else "none"
                raise _condition_error(
                    f"The response has no field {self.field!r} (top-level fields: {keys}).",
                    hint="Check the field's name, a dotted path such as 'available' or 'items.0.status'.",
                ) from None
        if self.comparison is not None:
            met = self._compare(observed)
        if self.check is not None:
            function = check if check is not None else import_check(self.check)
            met = met and bool(function(response))
        return Outcome(met=met, observed=observed)

    def _compare(self, observed: Any) -> bool:
        assert self.comparison is not None
        compare = COMPARISONS[self.comparison]
        left, right = as_decimal(observed), as_decimal(self.value)
        if left is not None and right is not None:
            return compare(left, right)
        if self.comparison in _ORDERING:
            raise _condition_error(
                f"The field {self.field!r} holds {observed!r}, which is not a number to compare "
                f"with {self.comparison} {self.value}.",
                hint="Compare a numeric field, or use == / != for text.",
            )
        return compare(observed, self.value)


def wait_before_next_poll(
    poke_interval: float,
    consecutive_failures: int,
    *,
    backoff_max: float,
    retry_after: float | None = None,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after a poll before the next one: never less than ``poke_interval``.

    After ``n`` transient failures in a row the wait doubles ``n`` times, capped at ``backoff_max`` (or
    at the poke interval, if that is larger), plus up to 10 % jitter upwards so that sensors failed by
    the same outage do not come back in step; the bank's ``Retry-After`` is honoured when longer.

    :param poke_interval: seconds between polls when all is well.
    :param consecutive_failures: transient failures since the last good answer.
    :param backoff_max: the cap of the exponential backoff, in seconds.
    :param retry_after: the bank's ``Retry-After`` of the last answer, in seconds, if any.
    :param jitter: a number in [0, 1) (injected so tests are exact).
    """
    interval = max(0.0, float(poke_interval))
    if consecutive_failures <= 0:
        wait = interval
    else:
        cap = max(interval, float(backoff_max))
        exponent = min(consecutive_failures, 62)  # 2**62 seconds already outlives every cap
        base = interval if interval > 0 else 1.0
        wait = min(cap, base * math.pow(2, exponent))
        wait += wait * 0.1 * max(0.0, min(jitter(), 1.0))
    if retry_after is not None and retry_after > wait:
        wait = float(retry_after)
    return max(wait, interval)


#: Seconds between two INFO lines of a wait that nothing changes: a summary every 10 minutes.
DEFAULT_SUMMARY_INTERVAL = 600.0


class WaitLog:
    """The level of each line a wait logs: INFO when something changes, DEBUG for a quiet poll.

    INFO (or WARNING) goes to the start of the wait (the caller's own line), a poll that ends it, the first
    transient error of a run of them, the first answer after such a run, and one poll every
    ``summary_interval`` seconds as a summary; every other poll is DEBUG.

    :param summary_interval: seconds between two summaries of a wait in which nothing changes.
    :param clock: monotonic seconds, injected so tests control time.
    """

    def __init__(
        self,
        summary_interval: float = DEFAULT_SUMMARY_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.summary_interval = float(summary_interval)
        self._clock = clock
        self._last_info = clock()
        self.failures = 0  # transient errors in a row

    def _summary_due(self) -> bool:
        now = self._clock()
        if now - self._last_info < self.summary_interval:
            return False
        self._last_info = now
        return True

    def waiting(self) -> int:
        """The level of a poll that answered and did not end the wait."""
        return logging.INFO if self._summary_due() else logging.DEBUG

    def failed(self) -> int:
        """The level of a transient error: WARNING for the first of a run (and as the summary), else DEBUG."""
        self.failures += 1
        due = self._summary_due()
        return logging.WARNING if self.failures == 1 or due else logging.DEBUG

    def recovered(self) -> int:
        """Transient errors in a row before this answer (0 when the previous poll answered too)."""
        failures, self.failures = self.failures, 0
        if failures:
            self._last_info = self._clock()
        return failures

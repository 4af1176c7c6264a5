"""What a failed task of the provider does with its retries, decided by the error's own type.

Airflow retries a failed task ``retries`` times, each after ``retry_delay``, whatever failed. For the
bank that is wrong twice over: a refused credential retried three times is three more refused token
requests (the way a credential gets locked), and a 429 retried before its ``Retry-After`` is refused
again. :class:`BankingApiRetryPolicy` is the default ``retry_policy`` of every operator and sensor of
the provider; Airflow evaluates it in the task's process when the task fails:

=============================================================  ====================================
the task failed with                                            what happens to its retries
=============================================================  ====================================
invalid credentials, invalid or unbound client certificate,     none: the task fails at once with the
source IP not on the allowlist, a TLS refusal of the            bank's reason (a retry would be
certificate or an untrusted server, a configuration or          refused the same way)
client identity error, a token still refused after renewal
429 Too Many Requests                                           retried no sooner than the bank's
                                                                ``Retry-After`` (capped), or after
                                                                the task's delay when that is longer
5xx, no answer (refused, timed out, dropped), a TLS             retried after the task's own delay
connection dropped mid-handshake, 408/425
anything else (another 4xx, a failed response check, an         Airflow's own rule: ``retries`` and
error that is not the bank's)                                   ``retry_delay``
=============================================================  ====================================

A retry never goes past the task's ``retries``: the policy can only end retries early or delay them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import RetryDecision, RetryPolicy

from airflow_provider_bankapi.errors import BankingApiError, RateLimitedError

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The longest a 429's ``Retry-After`` may hold a retry back unless the policy is given another cap.
DEFAULT_MAX_RETRY_AFTER = timedelta(hours=1)


def bank_error(exception: BaseException) -> BankingApiError | None:
    """The provider's error behind a failure: the exception itself, or the first one it was raised from."""
    seen: set[int] = set()
    current: BaseException | None = exception
    while current is not None and id(current) not in seen:
        if isinstance(current, BankingApiError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _reason(error: BankingApiError, what: str) -> str:
    return f"{type(error).__name__}: {error} ({what})"


def _task_delay(context: Context | None) -> timedelta | None:
    task = context.get("task") if context is not None else None
    delay = getattr(task, "retry_delay", None)
    return delay if isinstance(delay, timedelta) else None


class BankingApiRetryPolicy(RetryPolicy):
    """The task's retries decided from the error tree (see the module's table).

    :param max_retry_after: the longest wait a 429's ``Retry-After`` may impose before a retry.
    """

    def __init__(self, *, max_retry_after: timedelta = DEFAULT_MAX_RETRY_AFTER) -> None:
        if max_retry_after <= timedelta(0):
            raise ValueError("max_retry_after must be a positive timedelta, e.g. timedelta(minutes=30).")
        self.max_retry_after = max_retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_retry_after={self.max_retry_after!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.max_retry_after == self.max_retry_after

    def __hash__(self) -> int:
        return hash((type(self), self.max_retry_after))

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Context | None = None,
    ) -> RetryDecision:
        error = bank_error(exception)
        if error is None:
            return RetryDecision.default()
        if isinstance(error, RateLimitedError):
            return self._after_rate_limit(error, context)
        if error.transient:
            return RetryDecision.retry(reason=_reason(error, "transient: retried after the task's delay"))
        # Imported when a task fails, not when a DAG file is parsed: the client brings the HTTP stack.
        from airflow_provider_bankapi.client.batch import fails_every_account

        if fails_every_account(error):
            return RetryDecision.fail(
                _reason(error, "not retried: every retry would be refused the same way")
            )
        return RetryDecision.default()

    def _after_rate_limit(self, error: RateLimitedError, context: Context | None) -> RetryDecision:
        if error.retry_after is None:
            return RetryDecision.retry(reason=_reason(error, "rate limited: retried after the task's delay"))
        wanted = min(timedelta(seconds=error.retry_after), self.max_retry_after)
        task_delay = _task_delay(context)
        if task_delay is not None and task_delay >= wanted:
            # The task's own delay (and its exponential backoff) already waits long enough.
            return RetryDecision.retry(reason=_reason(error, "rate limited: retried after the task's delay"))
        seconds = int(wanted.total_seconds())
        return RetryDecision.retry(
            delay=wanted, reason=_reason(error, f"rate limited: retried in {seconds} s, as the bank asked")
        )

    def serialize(self) -> dict[str, Any]:
        return {"__type": type(self).__name__, "max_retry_after": self.max_retry_after.total_seconds()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> BankingApiRetryPolicy:
        return cls(max_retry_after=timedelta(seconds=float(data["max_retry_after"])))


def with_default_retry_policy(kwargs: dict[str, Any]) -> dict[str, Any]:
    """An operator's keyword arguments with :class:`BankingApiRetryPolicy` where none was given
    (directly, through ``default_args``, or ``partial()`` of a mapped task).
    """
    if kwargs.get("retry_policy") is None:
        kwargs["retry_policy"] = BankingApiRetryPolicy()
    return kwargs

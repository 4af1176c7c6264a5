"""BankingApiTrigger: polls a protected endpoint in the triggerer until a condition holds.

What it carries to the triggerer is plain values only (Airflow 3.3.2 stores a worker deferral's
kwargs unencrypted): the connection id, the endpoint and its params, the condition, the intervals
and the deadline. The client is rebuilt in the triggerer from the connection id, with the same token
stores as the workers (the host file store is shared on one machine), so the trigger rarely fetches
a token of its own; the triggers of one connection in a triggerer share that client
(:mod:`airflow_provider_bankapi.triggers.clients`).

Every blocking step (reading the connection, loading the client identity, the HTTPS call, the
condition's check function) runs in a worker thread, so that one slow bank never stalls the other
triggers of the event loop. Sync Task SDK calls made from a worker thread are bridged to the loop
by the triggerer itself.

Logging: the start of the wait, its end, a transient error (the first of a run), the first answer after
one, and a summary every :data:`~airflow_provider_bankapi.triggers.polling.DEFAULT_SUMMARY_INTERVAL`
seconds are INFO (or WARNING); every other poll is DEBUG. Each line the trigger logs travels from the
trigger runner to the triggerer's supervisor and wakes it.

Events (``TriggerEvent.payload``):

- ``{"status": "success", "value": <observed>, "polls": n}``
- ``{"status": "error", "error_type": "InvalidCredentialsError", "message", "hint", "status_code",
  "bank_reason", "transient", "polls"}``: an error that waiting cannot fix (credentials, certificate,
  allowlist, configuration, a 4xx). Never retried here: no hot loop on a 401.
- ``{"status": "timeout", "message", "polls", "last_error"}``: the deadline passed.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_bankapi import errors
from airflow_provider_bankapi.airflow_version import require_supported_airflow
from airflow_provider_bankapi.errors import BankingApiError, printable
from airflow_provider_bankapi.triggers.clients import CLIENTS
from airflow_provider_bankapi.triggers.polling import (
    Condition,
    WaitLog,
    import_check,
    wait_before_next_poll,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping

    from airflow_provider_bankapi.client.api import BankingApiClient
    from airflow_provider_bankapi.triggers.clients import SharedClient
    from airflow_provider_bankapi.triggers.polling import Outcome

require_supported_airflow()

DEFAULT_POKE_INTERVAL = 60.0
#: The cap of the wait between polls after transient errors (a wait of minutes), not the transport's
#: ``DEFAULT_BACKOFF_MAX`` between the attempts of one call (seconds).
DEFAULT_POLL_BACKOFF_MAX = 600.0


class BankingApiTrigger(BaseTrigger):
    """Polls ``GET endpoint`` every ``poke_interval`` seconds until ``condition`` holds.

    :param bankapi_conn_id: the connection to rebuild the client from (never the secrets themselves).
    :param endpoint: the path under the Base URL, e.g. ``/accounts/123/balance``.
    :param params: query parameters (plain values).
    :param condition: a :class:`~airflow_provider_bankapi.triggers.polling.Condition` as a dict
        (``Condition.to_dict()``); None: the first 2xx answer ends the wait.
    :param poke_interval: seconds between polls; also the least wait after an error.
    :param backoff_max: cap, in seconds, of the exponential backoff after transient errors.
    :param deadline: epoch seconds after which the wait ends with a ``timeout`` event (None: no limit).
    :param next_poll_at: epoch seconds before which the first poll is not made (the sensor already
        looked once from the worker; the interval holds across the hand-over).
    """

    def __init__(
        self,
        *,
        bankapi_conn_id: str,
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        condition: Mapping[str, Any] | None = None,
        poke_interval: float = DEFAULT_POKE_INTERVAL,
        backoff_max: float = DEFAULT_POLL_BACKOFF_MAX,
        deadline: float | None = None,
        next_poll_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger is unannotated
        self.bankapi_conn_id = bankapi_conn_id
        self.endpoint = endpoint
        self.params = dict(params) if params else None
        self.condition = Condition.from_dict(condition or {})
        self.poke_interval = float(poke_interval)
        self.backoff_max = float(backoff_max)
        self.deadline = None if deadline is None else float(deadline)
        self.next_poll_at = None if next_poll_at is None else float(next_poll_at)
        self._shared: SharedClient | None = None  # the shared client this trigger holds while it runs
        if self.poke_interval < 0 or self.backoff_max < 0:
            raise ValueError("poke_interval and backoff_max must be zero or more seconds.")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "bankapi_conn_id": self.bankapi_conn_id,
                "endpoint": self.endpoint,
                "params": self.params,
                "condition": self.condition.to_dict(),
                "poke_interval": self.poke_interval,
                "backoff_max": self.backoff_max,
                "deadline": self.deadline,
                "next_poll_at": self.next_poll_at,
            },
        )

    # -- the blocking parts, run in worker threads --------------------------------------------------

    def _import_check(self) -> Callable[[Any], Any] | None:
        return import_check(self.condition.check) if self.condition.check else None

    def _poll(self, client: BankingApiClient, check: Callable[[Any], Any] | None) -> Outcome:
        from airflow_provider_bankapi.client.api import unexpected_failure

        try:
            answer = client.get_json(self.endpoint, self.params)
        except BankingApiError as exc:
            not_yet = self.condition.not_yet(exc)
            if not_yet is None:
                raise
            return not_yet
        except Exception as exc:  # never blamed on the check function: it has not run
            raise unexpected_failure(exc, f"GET {self.endpoint}", client.redactor) from exc
        return self.condition.evaluate(answer, check)

    # -- the loop -----------------------------------------------------------------------------------

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep ``seconds``, or until the deadline if that comes first; False when the deadline came."""
        remaining = self._remaining()
        if remaining is not None and seconds >= remaining:
            await asyncio.sleep(max(0.0, remaining))
            return False
        if seconds > 0:
            await asyncio.sleep(seconds)
        return True

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            shared = await CLIENTS.acquire(self.bankapi_conn_id)
        except Exception as exc:  # no such connection, unreadable certificate...
            yield TriggerEvent(error_payload(exc, 0, hint="Check the connection and the sensor's arguments."))
            return
        self._shared = shared
        try:
            try:
                check = await asyncio.to_thread(self._import_check)
            except Exception as exc:  # the check function cannot be imported here
                hint = "Check the sensor's response_check."
                yield TriggerEvent(error_payload(exc, 0, hint=hint, redact=shared.client.redactor))
                return
            async with aclosing(self._poll_until_done(shared, check)) as events:
                async for event in events:
                    if event.payload["status"] == "timeout":
                        self.log.info("%s", event.payload["message"])  # the end of the wait, as its start
                    yield event  # one event per run: the triggerer ends the trigger after it
                    return
        finally:
            CLIENTS.release(self._shared or shared)  # the last trigger of the connection closes its client

    async def _poll_until_done(
        self, shared: SharedClient, check: Callable[[Any], Any] | None
    ) -> AsyncGenerator[TriggerEvent, None]:
        polls = 0
        last_error: BankingApiError | None = None
        wait_log = WaitLog()
        self.log.info(
            "Waiting until %s on %s, polling every %s s.",
            self.condition.describe(),
            self.endpoint,
            self.poke_interval,
        )
        first_wait = 0.0 if self.next_poll_at is None else self.next_poll_at - time.time()
        if not await self._sleep(first_wait):
            yield TriggerEvent(self._timeout_payload(polls, last_error, shared.client.redactor))
            return
        while True:
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                yield TriggerEvent(self._timeout_payload(polls, last_error, shared.client.redactor))
                return
            polls += 1
            retry_after: float | None = None
            try:
                # A connection changed in Airflow: the next polls use a client built from the new one (looked
                # for sooner while polls fail: the change may be the fix).
                shared = self._shared = await CLIENTS.renew(shared, failing=wait_log.failures > 0)
                # The deadline stops the waiting, not the thread: the transport's own timeouts end that.
                poll = asyncio.to_thread(self._poll, shared.client, check)
                outcome = await asyncio.wait_for(poll, remaining)
            except asyncio.TimeoutError:
                yield TriggerEvent(self._timeout_payload(polls, last_error, shared.client.redactor))
                return
            except BankingApiError as exc:
                if not exc.transient:
                    self.log.error(
                        "Poll %d of %s: %s: %s (not retried)", polls, self.endpoint, type(exc).__name__, exc
                    )
                    yield TriggerEvent(error_payload(exc, polls, redact=shared.client.redactor))
                    return
                last_error = exc
                retry_after = getattr(exc, "retry_after", None)
                self.log.log(
                    wait_log.failed(),
                    "Poll %d of %s: %s: %s (transient, %d in a row)",
                    polls,
                    self.endpoint,
                    type(exc).__name__,
                    exc.message,
                    wait_log.failures,
                )
            except Exception as exc:  # the user's check function failed: say so, never loop on it
                hint = "The condition's check function raised." if self.condition.check else ""
                yield TriggerEvent(error_payload(exc, polls, hint=hint, redact=shared.client.redactor))
                return
            else:
                recovered = wait_log.recovered()
                if recovered:
                    self.log.info(
                        "Poll %d of %s: answered again after %d transient errors.",
                        polls,
                        self.endpoint,
                        recovered,
                    )
                if outcome.met:
                    self.log.info("Poll %d of %s: %s holds.", polls, self.endpoint, self.condition.describe())
                    yield TriggerEvent({"status": "success", "value": outcome.observed, "polls": polls})
                    return
                self.log.log(
                    wait_log.waiting(),
                    "Poll %d of %s: waiting until %s (now %r).",
                    polls,
                    self.endpoint,
                    self.condition.describe(),
                    outcome.observed,
                )
            wait = wait_before_next_poll(
                self.poke_interval, wait_log.failures, backoff_max=self.backoff_max, retry_after=retry_after
            )
            if not await self._sleep(wait):
                yield TriggerEvent(self._timeout_payload(polls, last_error, shared.client.redactor))
                return

    def _timeout_payload(
        self, polls: int, last_error: BankingApiError | None, redact: Callable[[str], str]
    ) -> dict[str, Any]:
        message = (
            f"{self.endpoint}: {self.condition.describe()} did not hold before the deadline ({polls} polls)."
        )
        return {
            "status": "timeout",
            "message": message,
            "polls": polls,
            "last_error": None
            if last_error is None
            else redact(f"{type(last_error).__name__}: {last_error.message}"),
        }


def error_payload(
    error: BaseException, polls: int, *, hint: str = "", redact: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """The ``error`` event of an exception: its type, message, hint and the bank's reason.

    Airflow stores event payloads in its metadata database as they are, so the message and hint go
    through the client's redactor (its known secret values) and have their control characters
    escaped, whatever raised them: the error tree, the connection lookup or the user's check function.
    """
    if isinstance(error, BankingApiError):
        message, hint = error.message, error.hint or hint
    else:
        message = str(error)
    known = redact or (lambda text: text)
    return {
        "status": "error",
        "error_type": type(error).__name__,
        "message": known(printable(message)),
        "hint": known(printable(hint)),
        "status_code": getattr(error, "status_code", None),
        "bank_reason": getattr(error, "bank_reason", None),
        "transient": bool(getattr(error, "transient", False)),
        "polls": polls,
    }


def error_from_payload(payload: Mapping[str, Any]) -> BankingApiError:
    """The error an ``error`` event stands for, as its own class of the error tree when it is one
    (so that callbacks can branch on the type), else a plain :class:`BankingApiError`.
    """
    name = str(payload.get("error_type") or "BankingApiError")
    cls = getattr(errors, name, None)
    reason = payload.get("bank_reason")
    message = str(payload.get("message") or "the wait ended with an error")
    if reason and str(reason).lower() not in message.lower():
        message = f"{message} (the bank said: {reason})"
    hint = str(payload.get("hint") or "")
    if not (isinstance(cls, type) and issubclass(cls, BankingApiError)):
        return BankingApiError(f"{name}: {message}", hint=hint)
    error: BankingApiError
    if issubclass(cls, errors.ApiError):
        error = cls(message, hint=hint, status_code=payload.get("status_code"), bank_reason=reason)
    else:
        error = cls(message, hint=hint)
    # What decided it there decides it here (a task's retry policy): a TLS refusal of the certificate
    # is not transient, though its class rebuilt from a message alone would say it is.
    error.transient = bool(payload.get("transient", error.transient))
    return error

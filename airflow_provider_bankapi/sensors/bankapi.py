"""Sensors that wait on the Banking API: any protected endpoint, or an account's balance.

Both can hand the wait to the triggerer (``deferrable=True``, the default when ``[operators]
default_deferrable`` is set), where :class:`~airflow_provider_bankapi.triggers.bankapi.BankingApiTrigger`
polls with the same condition, the same token cache and a backoff on transient errors. So the
condition is made of plain values (a field, a comparison, a threshold) and, optionally, the dotted path
of an importable check function: a lambda cannot travel to the triggerer.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_bankapi.errors import BankingApiError, ConfigurationError
from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from airflow_provider_bankapi.retry_policy import with_default_retry_policy
from airflow_provider_bankapi.triggers.bankapi import (
    DEFAULT_POLL_BACKOFF_MAX,
    BankingApiTrigger,
    error_from_payload,
)
from airflow_provider_bankapi.triggers.polling import (
    COMPARISONS,
    Condition,
    WaitLog,
    as_decimal,
    checked_waiting_statuses,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from airflow.sdk import Context

    from airflow_provider_bankapi.triggers.polling import Outcome


def _is_template(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class BankingApiSensor(BaseSensorOperator):
    """Waits until ``GET endpoint`` answers and the answer meets a condition.

    :param endpoint: the path under the connection's Base URL (templated), e.g. ``/accounts``.
    :param query_params: query parameters (templated).
    :param field: dotted path of the response field to test (templated), e.g. ``"status"`` or
        ``"items.0.state"``; the sensor's XCom is that field's value (else the whole response).
    :param comparison: ``>=``, ``>``, ``<=``, ``<``, ``==`` or ``!=`` between the field and ``value``
        (as ``Decimal`` when both are numbers); default ``==`` when a value is given.
    :param value: what the field is compared with (templated; a plain value).
    :param response_check: a function ``(response_json) -> bool``, as the dotted path of an importable
        function (``"my_package.checks.funds_arrived"``: works deferred too) or, with
        ``deferrable=False`` only, a callable.
    :param bankapi_conn_id: the ``bankapi`` connection.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param backoff_max: in deferrable mode, the cap in seconds of the backoff after transient errors.
    :param waiting_statuses: 4xx statuses that mean "not yet" (default none): an answer with one of them
        keeps the sensor waiting, as an unmet condition does, e.g. ``(404,)`` for a resource that does not
        exist until the bank has made it. Refused when the DAG is parsed: 401 and 403 (refusals of the
        credential), 408, 425 and 429 (already waited on as transient), and anything but 4xx.
    """

    template_fields: Sequence[str] = ("endpoint", "query_params", "field", "value")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        endpoint: str,
        query_params: Mapping[str, Any] | None = None,
        field: str | None = None,
        comparison: str | None = None,
        value: Any = None,
        response_check: Callable[[Any], Any] | str | None = None,
        bankapi_conn_id: str = BankingApiHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        backoff_max: float = DEFAULT_POLL_BACKOFF_MAX,
        waiting_statuses: Sequence[int] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**with_default_retry_policy(kwargs))
        self.waiting_statuses = checked_waiting_statuses(waiting_statuses)  # refused at parse time
        self.endpoint = endpoint
        self.query_params = query_params
        self.field = field
        self.comparison = comparison if comparison is not None or value is None else "=="
        self.value = value
        self.response_check = response_check
        self.bankapi_conn_id = bankapi_conn_id
        self.deferrable = deferrable
        self.backoff_max = backoff_max
        if self.comparison is not None and self.comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {' '.join(COMPARISONS)}; got {comparison!r}.")
        if self.comparison is not None and field is None:
            raise ValueError("A comparison needs the field it compares: pass field='...'.")
        if callable(response_check) and deferrable:
            raise ValueError(
                "response_check must be the dotted path of an importable function "
                "('my_package.checks.funds_arrived') when deferrable=True: a callable cannot be "
                "serialized to the triggerer. Pass its path, or deferrable=False."
            )

    @cached_property
    def hook(self) -> BankingApiHook:
        return BankingApiHook(bankapi_conn_id=self.bankapi_conn_id)

    @cached_property
    def _wait_log(self) -> WaitLog:
        return WaitLog()

    # -- what to poll and when it is done (the balance sensor overrides these) ----------------------

    def _endpoint(self) -> str:
        return self.endpoint

    def _condition(self) -> Condition:
        check = self.response_check
        if callable(check):
            check = f"{getattr(check, '__module__', 'callable')}.{getattr(check, '__qualname__', 'check')}"
        value = self.value
        if value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)  # a Decimal threshold: keep its exact digits as text
        return Condition(
            field=self.field or None,
            comparison=self.comparison,
            value=value,
            check=check,
            waiting_statuses=self.waiting_statuses,
        )

    def _check_function(self) -> Callable[[Any], Any] | None:
        return self.response_check if callable(self.response_check) else None

    # -- poke mode ----------------------------------------------------------------------------------

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One look; INFO for the first, a change or a summary, DEBUG for a quiet one (see ``WaitLog``)."""
        condition = self._condition()
        endpoint = self._endpoint()
        first = "_wait_log" not in self.__dict__  # the first look of this wait: its start, at INFO
        wait_log = self._wait_log
        try:
            outcome = self._look(condition, endpoint)
        except BankingApiError as exc:
            if not exc.transient:
                raise
            self.log.log(
                wait_log.failed(),
                "%s: %s: %s (transient, %d in a row; poking again later)",
                endpoint,
                type(exc).__name__,
                exc,
                wait_log.failures,
            )
            return False
        recovered = wait_log.recovered()
        if recovered:
            self.log.info("%s: answered again after %d transient errors.", endpoint, recovered)
        if outcome.met:
            self.log.info("%s: %s holds.", endpoint, condition.describe())
            return PokeReturnValue(is_done=True, xcom_value=outcome.observed)
        level = logging.INFO if first else wait_log.waiting()
        described = condition.describe()
        self.log.log(level, "%s: waiting until %s (now %r).", endpoint, described, outcome.observed)
        return False

    def _look(self, condition: Condition, endpoint: str) -> Outcome:
        """One call and its outcome; an answer with one of ``waiting_statuses`` is an unmet one."""
        try:
            answer = self.hook.get_json(endpoint, self.query_params)
        except BankingApiError as exc:
            not_yet = condition.not_yet(exc)
            if not_yet is None:
                raise
            return not_yet
        return condition.evaluate(answer, self._check_function())

    # -- deferrable mode ----------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        deadline = time.time() + float(self.timeout)
        # One look from the worker first: when the condition already holds, no trigger is needed, and a
        # misconfigured connection fails here with its full traceback.
        first = self.poke(context)
        if first:
            return first.xcom_value if isinstance(first, PokeReturnValue) else None
        condition = self._condition()
        self.defer(
            trigger=BankingApiTrigger(
                bankapi_conn_id=self.bankapi_conn_id,
                endpoint=self._endpoint(),
                params=self.query_params,
                condition=condition.to_dict(),
                poke_interval=float(self.poke_interval),
                backoff_max=self.backoff_max,
                deadline=deadline,
                # The poke above counts: the trigger's first poll keeps the interval after it.
                next_poll_at=time.time() + float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(0.0, deadline - time.time())),
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger: return the observed value, or raise what ended the wait."""
        event = event or {}
        status = event.get("status")
        if status == "success":
            self.log.info(
                "%s: condition met after %s polls in the triggerer.", self._endpoint(), event.get("polls")
            )
            return event.get("value")
        if status == "timeout":
            last = f" Last error: {event['last_error']}." if event.get("last_error") else ""
            raise AirflowSensorTimeout(f"{event.get('message', 'The wait timed out.')}{last}")
        raise error_from_payload(event)


class BankingApiBalanceSensor(BankingApiSensor):
    """Waits until an account's balance field meets a threshold, compared as ``Decimal``.

    :param account_id: the account (templated).
    :param threshold: the amount to compare with (templated): a number or, for exact cents, a string
        such as ``"1500.00"``.
    :param comparison: ``>=`` (default), ``>``, ``<=``, ``<``, ``==`` or ``!=``.
    :param balance_field: the balance's field to compare (templated), default ``"available"``.

    Other parameters as :class:`BankingApiSensor` (``bankapi_conn_id``, ``deferrable``, ``poke_interval``,
    ``timeout``, ``backoff_max``, ``mode``...). The XCom is the field's value, e.g. ``"1523.10"``.
    """

    template_fields: Sequence[str] = ("account_id", "threshold", "balance_field")

    def __init__(
        self,
        *,
        account_id: str | int,
        threshold: Any,
        comparison: str = ">=",
        balance_field: str = "available",
        **kwargs: Any,
    ) -> None:
        if comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {' '.join(COMPARISONS)}; got {comparison!r}.")
        if not _is_template(threshold) and as_decimal(threshold) is None:
            raise ValueError(f"threshold must be a number such as 1500 or '1500.00'; got {threshold!r}.")
        super().__init__(
            endpoint="/accounts/{account_id}/balance",
            field=balance_field,
            comparison=comparison,
            value=threshold,
            **kwargs,
        )
        self.account_id = account_id
        self.threshold = threshold
        self.balance_field = balance_field

    def _endpoint(self) -> str:
        account = str(self.account_id).strip()
        if not account:
            raise ConfigurationError("account_id is empty.", field="account_id")
        from airflow_provider_bankapi.client.api import balance_path  # the client's imports, at run time only

        return balance_path(account)

    def _condition(self) -> Condition:
        threshold = as_decimal(self.threshold)
        if threshold is None:
            raise ConfigurationError(f"threshold {self.threshold!r} is not a number.", field="threshold")
        return Condition(
            field=self.balance_field,
            comparison=self.comparison,
            value=str(threshold),
            waiting_statuses=self.waiting_statuses,
        )

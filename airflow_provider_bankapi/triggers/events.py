"""BankingApiEventTrigger: an event each time a protected resource comes to meet a condition.

Made for event-driven scheduling: in an ``AssetWatcher``, the triggerer runs it for as long as the
DAG is active, and each event it yields becomes an asset event, which starts the DAGs scheduled on
that asset. "Start the payout DAG when the balance of account 123 reaches 1500.00"::

    from airflow.sdk import DAG, Asset, AssetWatcher

    from airflow_provider_bankapi.triggers.events import BankingApiEventTrigger

    trigger = BankingApiEventTrigger.for_balance("123", "1500.00", poke_interval=300)
    funds = Asset("bankapi_funds_123", watchers=[AssetWatcher(name="funds_123", trigger=trigger)])
    with DAG(dag_id="payout", schedule=[funds]): ...

The condition is the sensors' (:class:`~airflow_provider_bankapi.triggers.polling.Condition`): a field
compared with a plain value (as ``Decimal`` for numbers) and/or an importable check function. An event
fires when the condition **comes to hold**: at the first poll where it holds, then again only after a
poll where it did not. A balance that stays above the threshold starts one DAG run, not one per poll.
Whether it held at the last poll is kept in the asset's state store (Airflow's, across triggerer
restarts) when the trigger watches one asset, else in the trigger's memory.

Events (``TriggerEvent.payload``): ``{"status": "met", "endpoint", "value": <observed>, "polls": n}``.
Transient errors (429, 5xx, no answer) back off as in the sensors; an error waiting cannot fix (refused
credentials, certificate or source IP, a missing field) is logged once and then retried only every
``backoff_max`` seconds: a watcher has no task to fail, and the fix (a new secret, an allowlist entry)
is made at the bank or in the connection while it runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_bankapi.errors import BankingApiError
from airflow_provider_bankapi.triggers.bankapi import (
    DEFAULT_POKE_INTERVAL,
    DEFAULT_POLL_BACKOFF_MAX,
    BankingApiTrigger,
)
from airflow_provider_bankapi.triggers.clients import CLIENTS
from airflow_provider_bankapi.triggers.polling import Condition, as_decimal, wait_before_next_poll

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from airflow_provider_bankapi.triggers.clients import SharedClient

#: The asset state key under which the trigger remembers whether its condition held at the last poll.
STATE_KEY_PREFIX = "bankapi_condition_held"
_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _state_turn() -> asyncio.Lock:
    """One asset-state request at a time from this process's event triggers: the supervisor serves its
    runner's requests one by one, and its own (new triggers, events) wait behind whatever is queued.
    """
    loop = asyncio.get_running_loop()
    lock = _TURNS.get(loop)
    if lock is None:
        lock = _TURNS[loop] = asyncio.Lock()
    return lock


# Failures counted for an error waiting cannot fix: enough doublings that the backoff is at its cap.
_REFUSED = 62


class BankingApiEventTrigger(BankingApiTrigger, BaseEventTrigger):
    """Polls ``GET endpoint`` every ``poke_interval`` seconds; an event each time ``condition`` comes to hold.

    :param bankapi_conn_id: the connection to build the client from (never the secrets themselves).
    :param endpoint: the path under the Base URL, e.g. ``/accounts/123/balance``.
    :param params: query parameters (plain values).
    :param condition: a :class:`~airflow_provider_bankapi.triggers.polling.Condition` as a dict
        (``Condition(field="available", comparison=">=", value="1500.00").to_dict()``).
    :param poke_interval: seconds between polls; also the least wait after an error.
    :param backoff_max: cap, in seconds, of the backoff after errors.
    """

    def __init__(
        self,
        *,
        bankapi_conn_id: str = "bankapi_default",
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        condition: Mapping[str, Any] | None = None,
        poke_interval: float = DEFAULT_POKE_INTERVAL,
        backoff_max: float = DEFAULT_POLL_BACKOFF_MAX,
    ) -> None:
        super().__init__(
            bankapi_conn_id=bankapi_conn_id,
            endpoint=endpoint,
            params=params,
            condition=condition,
            poke_interval=poke_interval,
            backoff_max=backoff_max,
        )
        self._held: bool | None = None  # whether the condition held at the last poll, once known
        self._settling: asyncio.Task[None] | None = None  # the first state read, when it can wait

    @classmethod
    def for_balance(
        cls,
        account_id: str | int,
        threshold: str | int | float,
        *,
        comparison: str = ">=",
        balance_field: str = "available",
        **kwargs: Any,
    ) -> BankingApiEventTrigger:
        """The trigger of "the account's balance field ``comparison`` ``threshold``", as the balance
        sensor words it (``for_balance("123", "1500.00")``: available at least 1500.00).
        """
        number = as_decimal(threshold)
        if number is None:
            raise ValueError(f"threshold must be a number such as 1500 or '1500.00'; got {threshold!r}.")
        condition = Condition(field=balance_field, comparison=comparison, value=str(number))
        # The client's balance path, written here so that a DAG file parses without the HTTP stack.
        endpoint = f"/accounts/{quote(str(account_id).strip(), safe='')}/balance"
        return cls(endpoint=endpoint, condition=condition.to_dict(), **kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        classpath, kwargs = super().serialize()
        del kwargs["deadline"], kwargs["next_poll_at"]  # a watcher waits for as long as its DAG is active
        return classpath, kwargs

    # -- whether the condition held at the last poll ------------------------------------------------

    def _state_key(self) -> str:
        # One key per trigger: two watchers of one asset with different conditions do not mix.
        kwargs = json.dumps(self.serialize()[1], sort_keys=True, default=str)
        return f"{STATE_KEY_PREFIX}:{hashlib.sha256(kwargs.encode()).hexdigest()[:16]}"

    async def _held_before(self) -> bool:
        # The asset's state is read once: after a restart it says whether the last poll saw the condition
        # hold. From then on this trigger is its only writer, so memory knows, and a poll costs the
        # triggerer's supervisor nothing (each read is a request to it: a read per poll of a thousand
        # watchers kept it busy at a whole core).
        if self._settling is not None:
            await self._settling  # it reads the state (see _settle)
        elif self._held is None:
            self._held = await self._read_state()
        return bool(self._held)

    async def _read_state(self) -> bool:
        store = self.asset_state_store
        if store is None:
            return False
        async with _state_turn():
            try:
                return bool(await store.aget(self._state_key()))
            except ValueError:  # watching several assets: no single state to keep it in, memory only
                self.asset_state_store = None
                return False

    async def _settle(self) -> None:
        # The first answer did not meet the condition. Only a state left at "held" by an earlier trigger
        # needs a write (else its successor would take the next crossing for the old one); reading it can
        # wait its turn, off the poll loop, so that a thousand watchers starting together neither delay
        # their polls nor queue ahead of the triggerer's own requests to its supervisor.
        self._held = await self._read_state()
        if self._held:
            await self._remember(False)

    async def _remember(self, held: bool) -> None:
        self._held = held
        if self.asset_state_store is not None:
            async with _state_turn():
                await self.asset_state_store.aset(self._state_key(), held)

    # -- the loop -----------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        shared: SharedClient | None = None  # the connection's client, shared with the process's triggers
        check: Callable[[Any], Any] | None = None
        imported = False
        polls, failures = 0, 0
        try:
            while True:
                retry_after: float | None = None
                try:
                    shared = await self._client(shared, failing=failures > 0)
                    if not imported:
                        check, imported = await asyncio.to_thread(self._import_check), True
                    polls += 1
                    outcome = await asyncio.to_thread(self._poll, shared.client, check)
                except BankingApiError as exc:
                    retry_after = getattr(exc, "retry_after", None)
                    if exc.transient:
                        failures += 1
                        self._log_transient(polls, exc, failures)
                    else:
                        if failures < _REFUSED:
                            self._log_refusal(polls, exc)
                        failures = _REFUSED  # the longest backoff: only a change at the bank can help
                else:
                    failures = 0
                    if outcome.met and not await self._held_before():
                        await self._remember(True)
                        self.log.info(
                            "Poll %d of %s: %s holds.", polls, self.endpoint, self.condition.describe()
                        )
                        yield TriggerEvent(
                            {
                                "status": "met",
                                "endpoint": self.endpoint,
                                "value": outcome.observed,
                                "polls": polls,
                            }
                        )
                    elif not outcome.met and self._held is None and self._settling is None:
                        self._settling = asyncio.create_task(self._settle())
                    elif not outcome.met and self._held:
                        await self._remember(False)
                await asyncio.sleep(
                    wait_before_next_poll(
                        self.poke_interval, failures, backoff_max=self.backoff_max, retry_after=retry_after
                    )
                )
        finally:
            if self._settling is not None:
                self._settling.cancel()
            if shared is not None:
                CLIENTS.release(shared)

    async def _client(self, shared: SharedClient | None, *, failing: bool) -> SharedClient:
        """The connection's shared client: taken at the first poll, renewed when the connection changed
        (looked for sooner while polls fail: the change may be the fix).
        """
        if shared is None:
            return await CLIENTS.acquire(self.bankapi_conn_id)
        return await CLIENTS.renew(shared, failing=failing)

    def _log_transient(self, polls: int, error: BankingApiError, failures: int) -> None:
        self.log.warning(
            "Poll %d of %s: %s: %s (transient, %d in a row)",
            polls,
            self.endpoint,
            type(error).__name__,
            error.message,
            failures,
        )

    def _log_refusal(self, polls: int, error: BankingApiError) -> None:
        self.log.error(
            "Poll %d of %s: %s: %s (polling again every %.0f s until it is fixed)",
            polls,
            self.endpoint,
            type(error).__name__,
            error,
            max(self.backoff_max, self.poke_interval),
        )

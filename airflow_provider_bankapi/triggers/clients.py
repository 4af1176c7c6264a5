"""One client per connection in a triggerer process, shared by every trigger that waits on it.

A thousand deferred sensors on one connection would otherwise load the client identity a thousand times
and keep a thousand ``SSLContext`` objects, Sessions and TLS connections, with the memory and the
garbage-collection pauses that come with them. Here the triggers of one connection share one
:class:`~airflow_provider_bankapi.client.api.BankingApiClient`: one identity load, one token, and a few
kept-alive TLS connections (the client's one Session keeps one per poll in flight, so at most as many as
the event loop's worker threads).

- The client is built in a worker thread (reading the connection, loading the identity and deriving the
  token cache key block), once: triggers of the same connection that start while it is being built
  wait for that build instead of making their own.
- It is counted: each trigger takes it with :meth:`ClientRegistry.acquire` and gives it back with
  :meth:`ClientRegistry.release`; the last one to give it back closes it.
- A connection changed in Airflow is picked up within :data:`DEFAULT_RECHECK_INTERVAL` seconds: the
  connection is read again once per interval (by the first trigger to poll after it, for all), and when
  its content differs the following polls get a client built from the new content. Reading it at every
  poll would cost a call to the triggerer's supervisor per poll. While a trigger's polls fail (the bank
  cannot be reached, or refuses), the interval is :data:`DEFAULT_FAILING_RECHECK_INTERVAL`: the fix is
  most likely a corrected connection (its host, secret or certificate), and a wait should take it up in
  seconds, not minutes.

Keys are the connection id; the content is compared through a SHA-256 of its fields, kept in memory only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.sdk import Connection

    from airflow_provider_bankapi.client.api import BankingApiClient

log = logging.getLogger(__name__)

#: Seconds after which a shared client's connection is read again to see whether it changed.
DEFAULT_RECHECK_INTERVAL = 300.0
#: The same, for a client whose last poll failed: one read of the connection per half minute while it does.
DEFAULT_FAILING_RECHECK_INTERVAL = 30.0


def connection_fingerprint(connection: Connection) -> str:
    """SHA-256 of the fields a client is built from: equal for equal content, whatever the object."""
    fields = [
        connection.conn_type,
        connection.host,
        connection.login,
        connection.password,
        connection.port,
        connection.extra_dejson,
    ]
    text = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_connection(conn_id: str) -> Connection:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def _build(connection: Connection) -> BankingApiClient:
    from airflow_provider_bankapi.hooks.bankapi import client_from_connection
    from airflow_provider_bankapi.hooks.variable_store import in_triggerer

    with in_triggerer():  # cache_scope=cluster: the triggerer shares the workers' Variable
        client = client_from_connection(connection)
    try:
        _ = client.identity  # validate the certificate and key now: a bad one ends the wait at once
    except BaseException:
        client.close()
        raise
    return client


@dataclass(eq=False)
class SharedClient:
    """A client and who holds it. ``users`` and ``current`` change under the registry's lock only."""

    conn_id: str
    fingerprint: str
    client: BankingApiClient
    checked_at: float
    users: int = 0
    current: bool = True
    closed: bool = field(default=False, repr=False)


class ClientRegistry:
    """The shared clients of this process, by connection id.

    :param recheck_interval: seconds after which a connection is read again (see the module's docstring).
    :param failing_recheck_interval: the same, when the trigger asking had its last poll fail.
    :param read_connection: the connection of an id (Airflow's lookup; injected by tests).
    :param build: the client of a connection (the hook's; injected by tests).
    :param clock: monotonic seconds, injected so tests control time.
    """

    def __init__(
        self,
        *,
        recheck_interval: float = DEFAULT_RECHECK_INTERVAL,
        failing_recheck_interval: float = DEFAULT_FAILING_RECHECK_INTERVAL,
        read_connection: Callable[[str], Connection] = _read_connection,
        build: Callable[[Connection], BankingApiClient] = _build,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recheck_interval = float(recheck_interval)
        self.failing_recheck_interval = float(failing_recheck_interval)
        self._read_connection = read_connection
        self._build = build
        self._clock = clock
        self._lock = threading.Lock()
        self._current: dict[str, SharedClient] = {}
        # The read (and build) under way for a connection id, awaited by every trigger that needs it.
        self._pending: dict[str, asyncio.Task[SharedClient]] = {}
        self.builds = 0  # clients built by this registry, for tests and benchmarks

    async def acquire(self, conn_id: str, *, failing: bool = False) -> SharedClient:
        """The current client of ``conn_id``, held until :meth:`release`; built (once) when there is none
        or when the connection changed.

        :param failing: as for :meth:`renew`.
        :raises Exception: whatever reading the connection or loading the identity raised.
        """
        while True:
            with self._lock:
                shared = self._current.get(conn_id)
                if shared is not None and not self._due(shared, failing=failing):
                    shared.users += 1
                    return shared
            shared = await self._refreshed(conn_id, shared)
            with self._lock:
                if shared.current:  # not replaced by a newer build meanwhile (else look again)
                    shared.users += 1
                    return shared

    async def renew(self, shared: SharedClient, *, failing: bool = False) -> SharedClient:
        """``shared``, or the client that replaced it when its connection changed (``shared`` released).

        :param failing: the caller's last poll failed: the connection is read again sooner (see the
            module's docstring).
        """
        if shared.current and not self._due(shared, failing=failing):
            return shared
        try:
            newer = await self.acquire(shared.conn_id, failing=failing)
        except Exception as exc:  # the connection cannot be read now: keep the client that works
            with self._lock:
                shared.checked_at = self._clock()
            log.warning(
                "Could not read the connection %s again (%s); its triggers keep their client.",
                shared.conn_id,
                type(exc).__name__,
            )
            return shared
        self.release(shared)
        return newer

    def release(self, shared: SharedClient) -> None:
        """Give a client back; the last holder of a client no longer current, or of any when none is left,
        closes it.
        """
        with self._lock:
            shared.users -= 1
            last = shared.users <= 0 and not shared.closed
            if last:
                shared.closed = True
                if self._current.get(shared.conn_id) is shared:
                    del self._current[shared.conn_id]
                shared.current = False
        if last:
            shared.client.close()  # closes idle sockets: no blocking I/O

    def _due(self, shared: SharedClient, *, failing: bool = False) -> bool:
        interval = self.recheck_interval
        if failing:
            interval = min(interval, self.failing_recheck_interval)
        return self._clock() - shared.checked_at >= interval

    async def _refreshed(self, conn_id: str, seen: SharedClient | None) -> SharedClient:
        # One read (and build) per connection id at a time, in a task of its own: a trigger cancelled
        # while it waits does not cancel the build the others wait for.
        loop = asyncio.get_running_loop()
        task = self._pending.get(conn_id)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(asyncio.to_thread(self._read_and_build, conn_id, seen))
            self._pending[conn_id] = task
            task.add_done_callback(partial(self._forget, conn_id))
        return await asyncio.shield(task)

    def _forget(self, conn_id: str, task: asyncio.Task[SharedClient]) -> None:
        if self._pending.get(conn_id) is task:
            del self._pending[conn_id]
        if not task.cancelled():
            task.exception()  # retrieved here: the waiters, if any are left, raise it themselves

    def _read_and_build(self, conn_id: str, seen: SharedClient | None) -> SharedClient:
        """In a worker thread: read the connection; the same client if its content is unchanged, else a
        new one, which replaces the old as the current one (the old is closed by its last holder).
        """
        connection = self._read_connection(conn_id)
        fingerprint = connection_fingerprint(connection)
        if seen is not None and seen.current and seen.fingerprint == fingerprint:
            with self._lock:
                seen.checked_at = self._clock()
            return seen
        client = self._build(connection)
        self.builds += 1
        shared = SharedClient(conn_id, fingerprint, client, checked_at=self._clock())
        idle = None
        with self._lock:
            old = self._current.get(conn_id)
            self._current[conn_id] = shared
            if old is not None:
                old.current = False
                if old.users <= 0 and not old.closed:
                    old.closed, idle = True, old
        if idle is not None:
            idle.client.close()
        if seen is not None:
            log.info("The connection %s changed: its triggers use a client built from the new one.", conn_id)
        return shared

    def snapshot(self) -> dict[str, Any]:
        """Current clients and their holders by connection id (for tests and benchmarks)."""
        with self._lock:
            return {conn_id: shared.users for conn_id, shared in self._current.items()}


#: The registry of this process: every trigger of the process takes its clients from it.
CLIENTS = ClientRegistry()

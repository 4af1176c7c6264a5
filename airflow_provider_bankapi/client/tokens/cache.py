"""Access tokens: one token per (token URL, credential, client certificate), shared as widely as allowed.

:class:`TokenCache` looks a token up in its stores, fastest first (``process`` memory, ``host`` files,
later an Airflow ``cluster`` store), copies a fresh hit back into the faster stores, and on a miss takes
every store's lock in order, looks again inside (another sharer may just have fetched), and only then
fetches, once, saving the token to every store (single flight, as authlib refreshes under a lock).
A refusal is shared the same way: when the bank refuses the token request (credentials, certificate,
source IP), that answer is this cache's for the credential for ``refusal_memory`` seconds, so the
calls in flight (one per worker thread) fail with it instead of each asking the bank again.

A token shared by several hosts (a store with ``spans_hosts``, the ``cluster`` one) is renewed by each
host at its own moment inside the refresh margin (:func:`host_margin`): the first host to renew puts
the new token in the shared store, and the others find it there instead of each fetching its own.

A store is an optimisation, never a point of failure: whatever a store raises is logged (without
secrets) and the call goes on without that store; the worst case is one more token fetch.

The values (:class:`AccessToken`, :func:`parse_token_response`, :func:`cache_key`) live in
``tokens/values.py``, the host files in ``tokens/host.py``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import socket
import threading
import time
import weakref
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Protocol

from airflow_provider_bankapi.client.fields import DEFAULT_REFRESH_MARGIN
from airflow_provider_bankapi.client.settings import cache_scope
from airflow_provider_bankapi.client.tokens.host import DEFAULT_LOCK_TIMEOUT, HostTokenStore
from airflow_provider_bankapi.client.tokens.values import AccessToken
from airflow_provider_bankapi.errors import BankingApiError, TokenResponseError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

log = logging.getLogger(__name__)

#: Seconds a refused token request stays this cache's answer for its credential (see the module's docstring).
DEFAULT_REFUSAL_MEMORY = 30.0


class TokenStore(Protocol):
    """Where tokens are kept between calls. What :class:`TokenCache` relies on, and what it does not:

    - ``load`` may return a stale token, or None; the cache judges freshness itself.
    - ``save`` replaces whatever the store holds for the key; last writer wins is fine.
    - ``discard(key, token)`` forgets the entry only if it still holds that token (same ``access_token``).
      A store without compare-and-set may load, compare and delete: losing that race deletes a newer
      token, which costs one extra fetch and nothing else.
    - ``lock`` serialises fetches over what the store spans (threads, processes of a host...). A store
      with no lock of its own returns ``contextlib.nullcontext()``: correctness never depends on a lock,
      only the number of fetches does. Locks are taken in store order, so the fastest store's lock
      guards the slower ones (the host file lock makes each machine fetch at most once, even over a
      cluster store that has none).
    - Anything a store raises is logged and that store is skipped for the rest of the call.
    - A store shared by several hosts says so with a true ``spans_hosts`` attribute: the hosts then
      renew at spread moments (see :func:`host_margin`).
    - Tokens are certificate-bound secrets: a store must keep them where only this credential's owner
      can read them, and must never log them (a repr of :class:`AccessToken` hides the token).
    """

    @property
    def name(self) -> str:
        """A short label for logs: ``process``, ``host``, ``cluster``."""
        ...

    def load(self, key: str) -> AccessToken | None: ...

    def save(self, key: str, token: AccessToken) -> None: ...

    def discard(self, key: str, token: AccessToken | None = None) -> None: ...

    def lock(self, key: str) -> AbstractContextManager[object]: ...


# Every memory store, so that a forked child (Airflow forks task processes) gets fresh locks: a lock held
# by another thread of the parent at fork time would otherwise stay locked in the child for ever.
_MEMORY_STORES: weakref.WeakSet[MemoryTokenStore] = weakref.WeakSet()


class MemoryTokenStore:
    """Tokens in this process's memory, with a lock per key: threads of one process fetch one token.

    :param lock_timeout: seconds to wait for another thread's fetch before going on without the lock
        (None: wait for ever). A fetch is itself bounded by the transport's timeouts.
    """

    name = "process"

    def __init__(self, *, lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT) -> None:
        self.lock_timeout = lock_timeout
        self._tokens: dict[str, AccessToken] = {}
        self._reset_locks()
        _MEMORY_STORES.add(self)

    def _reset_locks(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def load(self, key: str) -> AccessToken | None:
        with self._guard:
            return self._tokens.get(key)

    def save(self, key: str, token: AccessToken) -> None:
        with self._guard:
            self._tokens[key] = token

    def discard(self, key: str, token: AccessToken | None = None) -> None:
        with self._guard:
            held = self._tokens.get(key)
            if held is not None and (token is None or held.access_token == token.access_token):
                del self._tokens[key]

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        timeout = -1.0 if self.lock_timeout is None else max(self.lock_timeout, 0.0)
        if not lock.acquire(timeout=timeout):
            # TimeoutError is an OSError: the cache goes on without this lock (one extra fetch at worst).
            raise TimeoutError(f"another thread held the token lock for more than {self.lock_timeout} s")
        try:
            yield
        finally:
            lock.release()


def _after_fork_in_child() -> None:
    for store in list(_MEMORY_STORES):
        store._reset_locks()  # noqa: SLF001 - the module's own fork hook


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: The process-wide memory store: every client of this process shares it (every ``cache_scope`` but off).
PROCESS_TOKENS = MemoryTokenStore()


def stores_for(
    scope: object, *, cluster: Callable[[], Sequence[TokenStore]] | None = None
) -> list[TokenStore]:
    """The token stores of a cache scope, fastest first: the one place where a scope becomes stores.

    :param scope: the connection's ``cache_scope`` (checked here; None is the default).
    :param cluster: the stores every worker shares (the hook's Airflow Variable). Without them
        ``cluster`` shares as widely as ``host``.
    """
    scope = cache_scope(scope)
    if scope == "off":
        return []
    if scope == "process":
        return [PROCESS_TOKENS]
    stores: list[TokenStore] = [PROCESS_TOKENS, HostTokenStore()]
    if scope == "cluster" and cluster is not None:
        stores.extend(cluster())
    return stores


#: How much later than the refresh margin a host may renew a token it shares with other hosts, as a share
#: of the margin: with the bank's 5 minutes, hosts renew between 5 and 2.5 minutes before expiry.
HOST_SPREAD = 0.5


def host_margin(margin: float, host: str) -> float:
    """The refresh margin of ``host`` for a token shared by several hosts: between ``margin`` and
    ``margin * (1 - HOST_SPREAD)``, fixed by a hash of the host name.

    Hosts that renewed together would each fetch a token (a shared store has no compare-and-set); spread
    over 2.5 minutes, the first host renews and the others, later, find its token in the shared store. The
    same on every process of a host, so the host's own lock still makes it fetch once.
    """
    fraction = int.from_bytes(hashlib.sha256(host.encode("utf-8")).digest()[:8], "big") / 2**64
    return margin * (1.0 - HOST_SPREAD * fraction)


def _describe(exc: BaseException) -> str:
    # Our stores' messages hold paths and reasons only; cap a foreign store's message all the same.
    return f"{type(exc).__name__}: {str(exc)[:300]}"


class TokenCache:
    """One fresh token per key for every sharer: stores looked up fastest first, one fetch on a miss.

    :param stores: fastest and narrowest first (memory, host, cluster). With none, the cache keeps a
        private memory store, so one client still reuses its own token (``cache_scope=off``).
    :param margin: seconds before expiry at which a token is renewed (capped at half its lifetime).
    :param clock: epoch seconds, injected so tests control time.
    :param on_secret: called once with each token this cache hands out, fetched or loaded from a store
        (another process may have written it), so that a host (Airflow's secret masker) hides it from
        logs before anyone can log it.
    :param refusal_memory: seconds during which a refused token request is the answer to every miss of
        its key, without asking the bank again. A refusal comes back the same until something changes
        at the bank (the credential reactivated, the IP allowed), which takes longer than a batch of calls.
    :param host: this machine's name, which spreads the renewals of a token shared by several hosts
        (default: ``socket.gethostname()``).
    """

    def __init__(
        self,
        stores: Sequence[TokenStore],
        *,
        margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
        on_secret: Callable[[str], None] | None = None,
        refusal_memory: float = DEFAULT_REFUSAL_MEMORY,
        host: str | None = None,
    ) -> None:
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
            raise ValueError("margin must be a finite number of seconds.")
        if margin < 0:
            raise ValueError("margin must be zero or more seconds.")
        self.stores: tuple[TokenStore, ...] = tuple(stores) or (MemoryTokenStore(),)
        self.margin = float(margin)
        if any(getattr(store, "spans_hosts", False) for store in self.stores):
            self.margin = host_margin(self.margin, socket.gethostname() if host is None else host)
        self.clock = clock
        self._on_secret = on_secret
        self._revealed: dict[str, str] = {}  # per key, the token last handed to on_secret
        if not isinstance(refusal_memory, (int, float)) or not 0 <= refusal_memory < math.inf:
            raise ValueError("refusal_memory must be zero or more seconds.")
        self.refusal_memory = float(refusal_memory)
        self._refusals: dict[str, tuple[float, BankingApiError]] = {}  # per key: when, and the bank's refusal

    def get(
        self, key: str, fetch: Callable[[], AccessToken], *, refused: AccessToken | None = None
    ) -> AccessToken:
        """A fresh token for ``key``: from the first store that holds one, else fetched once for all.

        :param key: from :func:`cache_key`.
        :param fetch: asks the bank for a new token; called at most once, under every store's lock.
        :param refused: a token the bank has just refused (a protected call got 401). It is never handed
            out again: every store it is met in forgets it, and the lookup goes on as if it were not
            there. Skipping it on every lookup, rather than deleting it once up front, matters: between a
            delete in the fast store and one in a slower store, another thread may copy the refused
            token back from the slower store into the faster one.
        :raises TokenResponseError: the new token had already expired when ``fetch`` returned it.
        """
        token = self._get(key, fetch, refused)
        if self._on_secret is not None and self._revealed.get(key) != token.access_token:
            self._on_secret(token.access_token)
            self._revealed[key] = token.access_token
        return token

    def _get(self, key: str, fetch: Callable[[], AccessToken], refused: AccessToken | None) -> AccessToken:
        failed: set[int] = set()  # positions of the stores that failed during this call
        token = self._lookup(key, failed, refused)
        if token is not None:
            return token
        with ExitStack() as held:
            for position in range(len(self.stores)):
                if position not in failed:
                    held.enter_context(self._locked(position, key, failed))
            token = self._lookup(key, failed, refused)  # another sharer may have fetched while we waited
            if token is not None:
                return token
            self._raise_recent_refusal(key)  # another sharer may have been refused while we waited
            try:
                token = fetch()
            except BankingApiError as exc:
                if not exc.transient:
                    self._refusals[key] = (self.clock(), exc)
                raise
            self._refusals.pop(key, None)
            now = self.clock()
            if now >= token.expires_at:
                raise TokenResponseError(
                    "The new access token had expired by the time it arrived (expires_in shorter than the "
                    "call, or the clock jumped).",
                    field="expires_in",
                )
            if token.is_fresh(now, self.margin):  # a token that is already stale would never be read back
                for position, store in enumerate(self.stores):
                    if position not in failed:
                        self._safely(position, "save", failed, partial(store.save, key, token))
            return token

    def _raise_recent_refusal(self, key: str) -> None:
        refusal = self._refusals.get(key)
        if refusal is not None and self.clock() - refusal[0] < self.refusal_memory:
            # A copy per caller: one exception object raised in several threads would mix their tracebacks.
            raise copy.copy(refusal[1]) from None

    def _lookup(self, key: str, failed: set[int], refused: AccessToken | None) -> AccessToken | None:
        for position, store in enumerate(self.stores):
            if position in failed:
                continue
            found = self._safely(position, "load", failed, partial(store.load, key))
            if found is None:
                continue
            if not isinstance(found, AccessToken):
                log.warning("Token store %s returned %s, not a token; ignoring it.", store.name, type(found))
                continue
            if refused is not None and found.access_token == refused.access_token:
                self._safely(position, "discard", failed, partial(store.discard, key, refused))
                continue
            if found.is_fresh(self.clock(), self.margin):
                for earlier in range(position):
                    if earlier not in failed:
                        self._safely(earlier, "save", failed, partial(self.stores[earlier].save, key, found))
                return found
        return None

    @contextmanager
    def _locked(self, position: int, key: str, failed: set[int]) -> Iterator[None]:
        # Like ExitStack.enter_context, but a lock that cannot be taken or released is only a warning.
        store = self.stores[position]
        try:
            manager = store.lock(key)
            manager.__enter__()
        except Exception as exc:  # noqa: BLE001 - any store failure degrades to no lock
            self._report(position, "lock", exc, failed)
            yield
            return
        try:
            yield
        finally:
            try:
                manager.__exit__(None, None, None)
            except Exception as exc:  # noqa: BLE001
                self._report(position, "unlock", exc, failed)

    def _safely(self, position: int, operation: str, failed: set[int], call: Callable[[], object]) -> object:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - a cache that fails must never fail the call
            self._report(position, operation, exc, failed)
            return None

    def _report(self, position: int, operation: str, exc: Exception, failed: set[int]) -> None:
        failed.add(position)
        log.warning(
            "Token store %s failed to %s (%s); going on without it for this call.",
            self.stores[position].name,
            operation,
            _describe(exc),
        )

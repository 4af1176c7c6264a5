"""Access tokens: parsing the bank's answer, freshness, and the cache that shares one token.

A token is bound to the certificate that fetched it (RFC 8705; the bank: "reuse the same mTLS material
for the token and the protected calls"), so the cache key includes the certificate's fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_bankapi.errors import TokenResponseError

log = logging.getLogger(__name__)

DEFAULT_REFRESH_MARGIN = 300.0  # the bank's sample client renews 5 minutes early
MAX_LIFETIME = 366 * 24 * 3600  # a stated lifetime beyond a year is absurd, not generous


@dataclass(frozen=True)
class AccessToken:
    """A bearer token with an absolute expiry (epoch seconds)."""

    access_token: str = field(repr=False)
    token_type: str
    issued_at: float
    expires_at: float

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.issued_at

    def is_fresh(self, now: float, margin: float = DEFAULT_REFRESH_MARGIN) -> bool:
        """Usable until ``margin`` before expiry; the margin never eats more than half the lifetime."""
        return now < self.expires_at - min(margin, self.lifetime / 2)


def _expires_in(value: object) -> int:
    # The contract leaves the type open: a positive integer, or a string of digits, and nothing else.
    if isinstance(value, bool):
        raise TokenResponseError("expires_in must be a number of seconds, not a boolean.", field="expires_in")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise TokenResponseError(
            "expires_in must be a positive whole number of seconds (or a string of digits).",
            field="expires_in",
        )
    if not 0 < value <= MAX_LIFETIME:
        raise TokenResponseError(
            f"expires_in must be between 1 and {MAX_LIFETIME} seconds; the bank said {value}.",
            field="expires_in",
        )
    return value


def parse_token_response(body: bytes | str | Mapping[str, Any], *, now: float) -> AccessToken:
    """The token in the bank's 2xx answer, strictly: anything unusable names the field at fault.

    :param body: the response body (or its decoded JSON object).
    :param now: the time the answer arrived (epoch seconds).
    """
    data: object = body
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise TokenResponseError(
                "The token endpoint answered 2xx with a body that is not JSON.",
                field="body",
                hint="Check auth_endpoint: it should be the token path, /auth/token-v2.",
            ) from None
    if not isinstance(data, Mapping):
        raise TokenResponseError("The token endpoint answered with JSON that is not an object.", field="body")
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        raise TokenResponseError(
            "The token answer has no access_token (a non-empty string).", field="access_token"
        )
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.strip().lower() != "bearer":
        raise TokenResponseError(f"token_type must be Bearer; got {token_type!r:.40}.", field="token_type")
    if "expires_in" not in data:
        raise TokenResponseError("The token answer has no expires_in.", field="expires_in")
    lifetime = _expires_in(data["expires_in"])
    if not math.isfinite(now):
        raise ValueError("now must be a finite number of seconds")
    return AccessToken(access_token.strip(), "Bearer", float(now), float(now) + lifetime)


def cache_key(token_url: str, client_id: str, certificate_fingerprint: str) -> str:
    """The cache key of a token: who asked where, with which certificate; never the secret."""
    material = json.dumps([token_url, client_id, certificate_fingerprint.lower()], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


class TokenStore(Protocol):
    """Where tokens are kept between calls; a store with no lock of its own yields at once in ``lock``."""

    name: str

    def load(self, key: str) -> AccessToken | None: ...

    def save(self, key: str, token: AccessToken) -> None: ...

    def discard(self, key: str, token: AccessToken | None = None) -> None: ...

    def lock(self, key: str) -> Any:  # a context manager
        ...


class MemoryTokenStore:
    """Tokens in this process's memory, guarded by a lock per key (single flight across threads)."""

    name = "process"

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def load(self, key: str) -> AccessToken | None:
        return self._tokens.get(key)

    def save(self, key: str, token: AccessToken) -> None:
        self._tokens[key] = token

    def discard(self, key: str, token: AccessToken | None = None) -> None:
        with self._guard:
            if token is None or self._tokens.get(key) == token:
                self._tokens.pop(key, None)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield


#: The process-wide memory store: every client of this process shares it (``cache_scope=process``).
PROCESS_TOKENS = MemoryTokenStore()


class TokenCache:
    """One token per key for every sharer: stores looked up fastest first, one fetch on a miss.

    :param stores: memory first, then slower and wider stores.
    :param margin: seconds before expiry at which a token counts as stale.
    :param clock: epoch seconds, injected so tests control time.
    """

    def __init__(
        self,
        stores: Sequence[TokenStore],
        *,
        margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stores = list(stores)
        self.margin = margin
        self.clock = clock
        # With no store at all, a client still keeps its own token for its own calls.
        self._own = MemoryTokenStore() if not self.stores else None

    def _all(self) -> list[TokenStore]:
        return self.stores if self._own is None else [self._own]

    def _lookup(self, key: str) -> AccessToken | None:
        stores = self._all()
        for position, store in enumerate(stores):
            token: AccessToken | None = _safely(store, "load", key)
            if token is not None and token.is_fresh(self.clock(), self.margin):
                for earlier in stores[:position]:
                    _safely(earlier, "save", key, token)
                return token
        return None

    def get(self, key: str, fetch: Callable[[], AccessToken]) -> AccessToken:
        """A fresh token for ``key``: cached, or fetched once while every sharer waits on the locks."""
        token = self._lookup(key)
        if token is not None:
            return token
        with ExitStack() as locks:
            for store in self._all():
                try:
                    locks.enter_context(store.lock(key))
                except OSError as exc:
                    log.warning("Token store %s could not lock (%s); going on without it.", store.name, exc)
            token = self._lookup(key)  # someone may have fetched while we waited
            if token is not None:
                return token
            token = fetch()
            for store in self._all():
                _safely(store, "save", key, token)
            return token

    def invalidate(self, key: str, token: AccessToken) -> None:
        """Forget ``token`` everywhere (a protected call said 401): the next ``get`` fetches anew."""
        for store in self._all():
            _safely(store, "discard", key, token)


def _safely(store: TokenStore, operation: str, *args: Any) -> Any:  # noqa: ANN401
    # A cache that fails must never fail the call: the worst case is one more token fetch.
    try:
        return getattr(store, operation)(*args)
    except Exception as exc:  # noqa: BLE001 - any store failure degrades to a miss
        log.warning(
            "Token store %s failed to %s (%s: %s); going on without it.",
            store.name,
            operation,
            type(exc).__name__,
            exc,
        )
        return None

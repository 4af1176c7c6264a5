"""What a running sandbox remembers: its knobs, the faults waiting to be served, counters and tokens.

One :class:`SandboxState` is shared by the HTTPS handler threads and the control endpoint, so
every method takes the lock; nothing here does I/O.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bankapi_sandbox.chaos import (
    EXTRA_FAULT_KINDS,
    REQUEST_LOG_LIMIT,
    FaultMix,
    RequestRecord,
)
from bankapi_sandbox.provision import BASE_PATH

if TYPE_CHECKING:
    from collections.abc import Callable

FAULT_KINDS = ("429", "503", "drop", "hang", "trickle")
#: Every kind a fault may be: the basic ones above and those of chaos.py.
ALL_FAULT_KINDS = FAULT_KINDS + EXTRA_FAULT_KINDS
ANY_PATH = "*"
# How long a "hang" fault holds a request when nobody stops the server: longer than any sane
# client read timeout, short enough that a forgotten hang does not pin a thread for good.
HANG_LIMIT_SECONDS = 120.0
# A "trickle" fault sends a 200 whose JSON body arrives one byte per this many seconds.
TRICKLE_INTERVAL_SECONDS = 0.5


def fault_path(path: str) -> str:
    """The key a fault is stored under: the path relative to the base URL, without a query."""
    path = path.split("?", 1)[0]
    if path == ANY_PATH:
        return path
    if path.startswith(BASE_PATH + "/"):
        path = path[len(BASE_PATH) :]
    if not path.startswith("/"):
        path = "/" + path
    return path.rstrip("/") or "/"


@dataclass(frozen=True)
class Fault:
    """One injected response: ``kind`` in :data:`ALL_FAULT_KINDS`; ``retry_after`` for 429/503."""

    kind: str
    retry_after: int | None = None


@dataclass
class _PendingFaults:
    fault: Fault
    remaining: int
    after: int = 0  # requests still let through before the first fault


@dataclass(frozen=True)
class IssuedToken:
    """What the sandbox knows about an access token (never the token itself: that is the key)."""

    client_id: str
    certificate_fingerprint: str
    expires_at: float
    revoked: bool = field(default=False)


class TokenRegistry:
    """Opaque random bearer tokens, each bound to the client certificate that fetched it (RFC 8705)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, client_id: str, certificate_fingerprint: str, lifetime: int) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            # Forget tokens long past expiry so a benchmark's thousands of tokens do not pile up.
            if len(self._tokens) > 1000:
                self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now - 60}
            self._tokens[token] = IssuedToken(client_id, certificate_fingerprint, now + lifetime)
        return token

    def lookup(self, token: str) -> IssuedToken | None:
        with self._lock:
            return self._tokens.get(token)

    def is_expired(self, issued: IssuedToken) -> bool:
        return self._clock() >= issued.expires_at

    def revoke(self, client_id: str | None = None) -> int:
        """Revoke every live token (of one credential when ``client_id`` is given); return how many."""
        return self._change(client_id, revoked=True)

    def expire(self, client_id: str | None = None) -> int:
        """Make live tokens expire now, so tests of expiry need not wait for the clock."""
        return self._change(client_id, expires_at=self._clock())

    def _change(self, client_id: str | None, **changes: Any) -> int:
        now = self._clock()
        changed = 0
        with self._lock:
            for key, issued in self._tokens.items():
                live = not issued.revoked and issued.expires_at > now
                if live and client_id in (None, issued.client_id):
                    self._tokens[key] = replace(issued, **changes)
                    changed += 1
        return changed


_MONEY = re.compile(r"-?\d{1,12}\.\d{2}")


class SandboxState:
    """Knobs, faults, counters and tokens of one running sandbox.

    :param latency: seconds added before every response.
    :param token_lifetime: ``expires_in`` of new tokens, in seconds.
    :param clock: the time source of token expiry (a seam for tests).
    """

    def __init__(
        self, *, latency: float = 0.0, token_lifetime: int = 3600, clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self._initial = (0.0, 3600)
        self.set_latency(latency)
        self.set_token_lifetime(token_lifetime)
        self._initial = (self.latency, self.token_lifetime)
        self._faults: dict[str, _PendingFaults] = {}
        self._counters: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._faults_served: Counter[str] = Counter()
        self._base_clock = clock
        self.clock_offset = 0.0
        self.tokens = TokenRegistry(self.now)
        self._mix: FaultMix | None = None
        self._asked: Counter[str] = Counter()  # requests per path since the mix was set
        self._requests: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._available: dict[str, str] = {}  # account id -> an available balance set by a test
        # Set when the server stops: wakes every sleeping latency and hanging request at once.
        self.stopping = threading.Event()

    # -- knobs --------------------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        seconds = float(seconds)
        if not 0 <= seconds <= 60:
            raise ValueError(f"latency must be between 0 and 60 seconds, not {seconds}")
        self.latency = seconds

    def set_token_lifetime(self, seconds: int) -> None:
        if isinstance(seconds, bool) or int(seconds) != seconds or seconds < 1:
            raise ValueError(f"token lifetime must be a positive whole number of seconds, not {seconds!r}")
        self.token_lifetime = int(seconds)

    def settings(self) -> dict[str, Any]:
        return {"latency": self.latency, "token_lifetime": self.token_lifetime}

    def now(self) -> float:
        """The bank's clock: the real one plus :attr:`clock_offset` (a bank whose clock is off)."""
        return self._base_clock() + self.clock_offset

    def set_clock_offset(self, seconds: float) -> None:
        seconds = float(seconds)
        if not -86_400 <= seconds <= 86_400:
            raise ValueError(f"clock offset must be within a day, not {seconds}")
        self.clock_offset = seconds

    # -- balances -----------------------------------------------------------------------------

    def set_available(self, account_id: str, amount: str | None) -> None:
        """Make the account's ``available`` balance ``amount`` (None: back to the generated one), so that
        a test can watch a balance cross a threshold.
        """
        if amount is not None and not _MONEY.fullmatch(str(amount)):
            raise ValueError(f"amount must be money such as '1500.00', not {amount!r}")
        with self._lock:
            if amount is None:
                self._available.pop(str(account_id), None)
            else:
                self._available[str(account_id)] = str(amount)

    def available(self, account_id: str) -> str | None:
        """The available balance a test set for the account, if any."""
        with self._lock:
            return self._available.get(account_id)

    # -- faults -------------------------------------------------------------------------------

    def inject_fault(
        self, path: str, kind: str, count: int = 1, retry_after: int | None = None, after: int = 0
    ) -> None:
        """Make the next ``count`` requests to ``path`` (or ``"*"``: any path) fail as ``kind``, once
        ``after`` requests have gone through (``after=1``: page 2 of a paginated read fails).
        """
        if kind not in ALL_FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(ALL_FAULT_KINDS)}, not {kind!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"fault count must be a positive integer, not {count!r}")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise ValueError(f"retry_after must be a whole number of seconds >= 0, not {retry_after!r}")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be a whole number of requests >= 0, not {after!r}")
        if retry_after is None and kind in ("429", "429-date"):
            retry_after = 1
        with self._lock:
            self._faults[fault_path(path)] = _PendingFaults(Fault(kind, retry_after), count, after)

    def take_fault(self, path: str) -> Fault | None:
        """The fault to serve for this request, if one is pending (an exact path wins over ``*``)."""
        with self._lock:
            for key in (fault_path(path), ANY_PATH):
                pending = self._faults.get(key)
                if pending is not None and pending.after > 0:
                    pending.after -= 1
                    return None
                if pending is not None:
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        del self._faults[key]
                    self._faults_served[pending.fault.kind] += 1
                    return pending.fault
            return self._mixed_fault(fault_path(path))

    def _mixed_fault(self, path: str) -> Fault | None:
        mix = self._mix
        if mix is None or not mix.applies_to(path):
            return None
        occurrence = self._asked[path]
        self._asked[path] += 1
        kind = mix.pick(path, occurrence)
        if kind is None:
            return None
        self._faults_served[kind] += 1
        return Fault(kind, mix.retry_after if kind in ("429", "429-date") else None)

    def set_fault_mix(self, mix: FaultMix | None) -> None:
        """Fault a share of requests at random from now on (None: stop); the draw restarts."""
        for kind in mix.kinds if mix is not None else ():
            if kind not in ALL_FAULT_KINDS:
                raise ValueError(f"fault kind must be one of {', '.join(ALL_FAULT_KINDS)}, not {kind!r}")
        with self._lock:
            self._mix = mix
            self._asked.clear()

    def fault_mix(self) -> FaultMix | None:
        return self._mix

    # -- the request log ----------------------------------------------------------------------

    def record(
        self, method: str, path: str, status: int | None, fault: str | None, interaction_id: str | None = None
    ) -> None:
        """Log one request (no header but its interaction id, no body: never a token)."""
        entry = RequestRecord.of(method, fault_path(path), status, fault, interaction_id)
        with self._lock:
            self._requests.append(entry)

    def take_requests(self) -> list[RequestRecord]:
        """The requests logged since the last take, oldest first; the log starts again empty."""
        with self._lock:
            taken = list(self._requests)
            self._requests.clear()
        return taken

    def pending_faults(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                path: {"kind": p.fault.kind, "remaining": p.remaining, "retry_after": p.fault.retry_after}
                for path, p in self._faults.items()
            }

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- counters -----------------------------------------------------------------------------

    def count(self, name: str) -> None:
        """Add one to ``tls_connections``, ``tls_handshake_failures``, ``tokens_issued``..."""
        with self._lock:
            self._counters[name] += 1

    def count_refused(self, reason: str) -> None:
        with self._lock:
            self._refused[reason] += 1

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return {
                "tokens_issued": self._counters["tokens_issued"],
                "token_refused": dict(self._refused),
                "api_requests": self._counters["api_requests"],
                "tls_connections": self._counters["tls_connections"],
                "tls_handshake_failures": self._counters["tls_handshake_failures"],
                "faults_served": dict(self._faults_served),
            }

    def reset_counters(self) -> None:
        with self._lock:
            self._counters.clear()
            self._refused.clear()
            self._faults_served.clear()

    def reset(self) -> None:
        """Back to the start: counters zero, no faults, start-time knobs and balances, every token revoked."""
        self.reset_counters()
        self.clear_faults()
        self.latency, self.token_lifetime = self._initial
        self.clock_offset = 0.0
        self.set_fault_mix(None)
        self.take_requests()
        with self._lock:
            self._available.clear()
        self.tokens.revoke()

"""BankingApiClient: one client identity, one token, many protected calls.

Everything here is plain Python: the Airflow hook is a thin layer that builds ``ClientSettings`` from a
Connection. The same mTLS material serves the token call and the protected calls (the bank's advice, and
RFC 8705: the token is bound to the certificate that fetched it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_bankapi.client.endpoints import check_base_url, endpoint_url, normalise_endpoint
from airflow_provider_bankapi.client.host_store import HostTokenStore
from airflow_provider_bankapi.client.identity import IdentityMaterial, load_identity
from airflow_provider_bankapi.client.session_auth import BankOnlyBearerAuth
from airflow_provider_bankapi.client.tokens import (
    PROCESS_TOKENS,
    TokenCache,
    TokenStore,
    cache_key,
    parse_token_response,
)
from airflow_provider_bankapi.client.transport import (
    TransportSettings,
    json_body,
    make_session,
    map_transport_error,
    probe_tls,
    raise_for_bank_status,
)
from airflow_provider_bankapi.errors import (
    ApiError,
    BankingApiError,
    ConfigurationError,
    ForbiddenError,
    InvalidClientCertificateError,
    InvalidCredentialsError,
    TlsHandshakeError,
)

if TYPE_CHECKING:
    from concurrent.futures import Future

    import requests

    from airflow_provider_bankapi.client.identity import CertificateDescription, ClientIdentity
    from airflow_provider_bankapi.client.tokens import AccessToken

log = logging.getLogger(__name__)

CACHE_SCOPES = ("host", "cluster", "process", "off")


@dataclass(frozen=True)
class ClientSettings:
    """What the client needs to reach the bank; field errors name the Airflow connection field.

    :param base_url: the API's base URL, ending in ``/public/gw_banking/v1``.
    :param client_id: the credential's client_id (connection login).
    :param client_secret: the credential's client_secret (connection password).
    :param identity: the mTLS material.
    :param auth_endpoint: the token path under the base URL.
    :param refresh_margin: seconds before expiry at which a token counts as stale (the bank: 5 minutes).
    :param transport: timeouts, retries, pool size, proxy.
    :param expiry_warning_days: warn when the client certificate expires within this many days.
    """

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    identity: IdentityMaterial = field(default_factory=IdentityMaterial)
    auth_endpoint: str = "/auth/token-v2"
    refresh_margin: float = 300.0
    transport: TransportSettings = field(default_factory=TransportSettings)
    expiry_warning_days: int = 30

    def __post_init__(self) -> None:
        check_base_url(self.base_url)
        if not self.client_id:
            raise ConfigurationError(
                "The Client ID is empty: copy it from the credential in CORE.", field="login"
            )
        if not self.client_secret:
            raise ConfigurationError(
                "The Client secret is empty: copy it from the credential in CORE.", field="password"
            )
        if not self.auth_endpoint.startswith("/"):
            raise ConfigurationError(
                "auth_endpoint must be a path such as /auth/token-v2.", field="auth_endpoint"
            )
        normalise_endpoint(self.auth_endpoint, field="auth_endpoint")
        if self.refresh_margin < 0:
            raise ConfigurationError("refresh_margin must be zero or more seconds.", field="refresh_margin")

    def url(self, path: str) -> str:
        """The absolute URL of a protected resource's path under the Base URL (see ``endpoints.py``).

        A path that resolves outside the Base URL's path or onto the token endpoint is refused.
        """
        return endpoint_url(self.base_url, path, token_endpoint=self.auth_endpoint)

    @property
    def token_url(self) -> str:
        """The absolute URL of the token endpoint."""
        return endpoint_url(self.base_url, self.auth_endpoint)


def token_stores_for(scope: str) -> list[TokenStore]:
    """The token stores of a cache scope that the client layer knows (``cluster`` is added by the hook)."""
    if scope == "off":
        return []
    if scope == "process":
        return [PROCESS_TOKENS]
    if scope in ("host", "cluster"):
        return [PROCESS_TOKENS, HostTokenStore()]
    raise ConfigurationError(
        f"cache_scope must be one of {', '.join(CACHE_SCOPES)}; got {scope!r}.", field="cache_scope"
    )


@dataclass(frozen=True)
class BatchResult:
    """Every success and every failure of a call made for many keys (account ids)."""

    succeeded: dict[str, Any]
    failed: dict[str, BankingApiError]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line for logs and errors: how many succeeded, and each failure by key with its error type."""
        failures = "; ".join(
            f"{key}: {type(error).__name__}: {error.message}" for key, error in self.failed.items()
        )
        text = f"{len(self.succeeded)} succeeded, {len(self.failed)} failed"
        return f"{text} ({failures})" if failures else text


@dataclass(frozen=True)
class ProbeReport:
    """The outcome of a connection test: the step that failed (or "done") and what to check."""

    ok: bool
    step: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


def fails_every_account(error: BankingApiError) -> bool:
    """Whether an error comes from the credential or this client's setup rather than from one account:
    a refused client_id/secret or certificate, a refused source IP, a token still refused after the
    renewal, a TLS failure or a configuration error. Every other account would fail the same way.
    """
    credential = (
        ConfigurationError,
        TlsHandshakeError,
        InvalidCredentialsError,
        InvalidClientCertificateError,
        ForbiddenError,
    )
    # Any other 401 on a protected call came after the one renewal of the token: it is refused too.
    return isinstance(error, credential) or (isinstance(error, ApiError) and error.status_code == 401)


def next_cursor_params(page: Any) -> dict[str, Any] | None:
    """Cursor pagination: ``{"next_cursor": "..."}`` in a page means ask again with ``cursor=...``."""
    cursor = page.get("next_cursor") if isinstance(page, Mapping) else None
    return {"cursor": cursor} if cursor else None


def balance_path(account_id: str | int) -> str:
    """The path of an account's balance, the id quoted whole (a ``/`` in it cannot reach another path)."""
    return f"/accounts/{quote(str(account_id), safe='')}/balance"


class BankingApiClient:
    """A token and protected calls over one mTLS client identity.

    :param settings: where and who.
    :param token_stores: where tokens are cached, fastest first (see :func:`token_stores_for`).
    :param clock: seconds since the epoch; injected so tests control time.
    :param on_secret: called with every secret value as soon as it exists (client_secret, each token), so
        that a host (Airflow's secret masker) can hide it from logs.
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        token_stores: Sequence[TokenStore] | None = None,
        clock: Callable[[], float] = time.time,
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._on_secret = on_secret or (lambda value: None)
        self._on_secret(settings.client_secret)
        stores = list(token_stores) if token_stores is not None else token_stores_for("host")
        self._tokens = TokenCache(stores, margin=settings.refresh_margin, clock=clock)
        # A Session per thread at a time, all on one SSLContext: requests does not promise a Session is
        # thread-safe, and idle sessions keep their keep-alive connection for the next borrower.
        self._idle_sessions: queue.SimpleQueue[requests.Session] = queue.SimpleQueue()
        self._all_sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # -- identity and token -------------------------------------------------------------------------

    @cached_property
    def identity(self) -> ClientIdentity:
        """The validated client identity (loaded once; errors name the connection field)."""
        return load_identity(self.settings.identity, expiry_warning_days=self.settings.expiry_warning_days)

    def describe_certificate(self) -> CertificateDescription:
        return self.identity.describe()

    @property
    def token_url(self) -> str:
        return self.settings.token_url

    @cached_property
    def _token_key(self) -> str:
        return cache_key(
            self.token_url,
            self.settings.client_id,
            self.identity.fingerprint_sha256,
            self.settings.client_secret,
        )

    def get_token(self) -> AccessToken:
        """A fresh access token: from the cache when one is fresh, else fetched once for all sharers."""
        return self._tokens.get(self._token_key, self._fetch_token)

    def _fetch_token(self) -> AccessToken:
        body = {
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
            "grant_type": "client_credentials",
        }
        # The bank wants JSON here, where most OAuth libraries send a form (docs/bank-contract.md).
        response = self._send("POST", self.settings.auth_endpoint, json=body)
        raise_for_bank_status(response, method="POST", path=self.settings.auth_endpoint)
        token = parse_token_response(response.content, now=self._clock())
        self._on_secret(token.access_token)
        log.info(
            "Fetched a new access token for client_id %s (expires in %d s).",
            self.settings.client_id,
            token.expires_at - token.issued_at,
        )
        return token

    # -- transport --------------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[requests.Session]:
        try:
            session = self._idle_sessions.get_nowait()
        except queue.Empty:
            session = make_session(
                self.identity.ssl_context(), self.settings.transport, token_url=self.token_url
            )
            with self._sessions_lock:
                self._all_sessions.append(session)
        try:
            yield session
        finally:
            self._idle_sessions.put(session)

    def _send(
        self, method: str, path: str, *, token: AccessToken | None = None, **kwargs: Any
    ) -> requests.Response:
        import requests

        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Accept", "application/json")
        if token is not None:
            headers["Authorization"] = f"Bearer {token.access_token}"
        # The token endpoint itself only for the token request (no Bearer token attached).
        is_token_call = token is None and path == self.settings.auth_endpoint
        url = self.settings.token_url if is_token_call else self.settings.url(path)
        with self._session() as session:
            try:
                return session.request(method, url, headers=headers, **kwargs)
            except requests.RequestException as exc:
                raise map_transport_error(exc, method=method, path=path) from exc

    def session(self) -> requests.Session:
        """A new Session with this identity's TLS and the Bearer token on every request, for callers that
        want raw requests. URLs must be absolute and under the Base URL (``settings.url(path)`` makes one):
        any other is refused before a connection is made, so the token only ever goes to the bank.
        """
        session = make_session(self.identity.ssl_context(), self.settings.transport, token_url=self.token_url)
        session.auth = BankOnlyBearerAuth(
            self.settings.base_url, self.get_token, auth_endpoint=self.settings.auth_endpoint
        )
        with self._sessions_lock:
            self._all_sessions.append(session)
        return session

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A protected call; non-2xx answers raise the error tree.

        A 401 means the token was revoked or expired early: drop it, fetch a new one, retry once.
        """
        self.settings.url(path)  # a path outside the Base URL is refused before a token is fetched
        token = self.get_token()
        response = self._send(method, path, token=token, **kwargs)
        renewed = response.status_code == 401
        if renewed:
            self._tokens.invalidate(self._token_key, token)
            response = self._send(method, path, token=self.get_token(), **kwargs)
        raise_for_bank_status(response, method=method, path=path, token_renewed=renewed)
        return response

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a protected resource and decode its JSON body (a non-JSON 2xx body is an ApiError)."""
        return json_body(self.request("GET", path, params=params), method="GET", path=path)

    # -- typed conveniences -------------------------------------------------------------------------

    def get_balance(self, account_id: str | int) -> Any:
        """The balance of one account (``GET /accounts/{id}/balance``, the bank's documented example)."""
        return self.get_json(balance_path(account_id))

    def get_balances(self, account_ids: Sequence[str | int], *, max_workers: int = 4) -> BatchResult:
        """Balances of many accounts, at most ``max_workers`` at once; every success and failure by id.

        A failure of the credential itself (see :func:`fails_every_account`) stops the batch: the
        accounts not yet asked for fail with it, and when no account succeeded it is raised, once.
        """
        succeeded: dict[str, Any] = {}
        failed: dict[str, BankingApiError] = {}
        for account_id, outcome in self.iter_balances(account_ids, max_workers=max_workers):
            if isinstance(outcome, BankingApiError):
                failed[account_id] = outcome
            else:
                succeeded[account_id] = outcome
        return BatchResult(succeeded, failed)

    def iter_balances(
        self, account_ids: Sequence[str | int], *, max_workers: int = 4
    ) -> Iterator[tuple[str, Any]]:
        """``(account_id, balance or BankingApiError)`` for each account, in the order of the ids (without
        duplicates), as the answers arrive: the same outcomes as :meth:`get_balances`, without holding them.

        At most ``max_workers`` calls run at once, and at most four times as many are asked for ahead of
        the consumer, so memory stays flat whatever the number of accounts. The token is fetched here,
        before any worker starts (a refused credential raises at once).
        """
        ids = list(dict.fromkeys(str(account_id) for account_id in account_ids))
        if not ids:
            return iter(())
        self.get_token()  # one token for the whole batch, fetched before the workers start
        return self._balances_in_order(ids, max(1, min(max_workers, len(ids))))

    def _balances_in_order(self, ids: list[str], workers: int) -> Iterator[tuple[str, Any]]:
        # Yielded in the order of the ids (deterministic output), with a window of calls asked for ahead:
        # one slow account holds back the yield, not the other workers, until the window is full.
        pending = iter(ids)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bankapi-balance")
        try:
            ahead = deque((i, pool.submit(self.get_balance, i)) for i in islice(pending, 4 * workers))
            delivered = False
            while ahead:
                account_id, future = ahead.popleft()
                outcome = self._outcome(future)
                if isinstance(outcome, BankingApiError) and fails_every_account(outcome):
                    yield from self._after_credential_failure(account_id, outcome, ahead, pending, delivered)
                    return
                ahead.extend((i, pool.submit(self.get_balance, i)) for i in islice(pending, 1))
                delivered = delivered or not isinstance(outcome, BankingApiError)
                yield account_id, outcome
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # a consumer that stops early: no queued call runs

    @staticmethod
    def _outcome(future: Future[Any]) -> Any:
        try:
            return future.result()
        except BankingApiError as exc:
            return exc

    @classmethod
    def _after_credential_failure(
        cls,
        account_id: str,
        error: BankingApiError,
        ahead: deque[tuple[str, Future[Any]]],
        pending: Iterator[str],
        delivered: bool,
    ) -> Iterator[tuple[str, Any]]:
        # No further call: the calls not started are cancelled, those already running end as they end,
        # and every account not asked for fails with the credential's error. When no account at all
        # succeeded, that error is raised instead, once (the window is small: its answers are awaited).
        for _, future in ahead:
            future.cancel()
        finished = [(i, error if future.cancelled() else cls._outcome(future)) for i, future in ahead]
        if not delivered and all(isinstance(outcome, BankingApiError) for _, outcome in finished):
            raise error
        yield account_id, error
        yield from finished
        yield from ((i, error) for i in pending)

    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        next_page: Callable[[Any], Mapping[str, Any] | None] = next_cursor_params,
        max_pages: int = 10_000,
    ) -> Iterator[Any]:
        """Yield each page's JSON body; ``next_page(page)`` gives the params to add for the next one."""
        current = dict(params or {})
        for _ in range(max_pages):
            page = self.get_json(path, current)
            yield page
            following = next_page(page)
            if not following:
                return
            current = {**current, **following}
        raise ApiError(
            f"GET {path} kept returning a next page after {max_pages} pages; stopped.",
            method="GET",
            path=path,
            hint="Check the pagination function: it must return None on the last page.",
        )

    # -- connection test ----------------------------------------------------------------------------

    def probe(self) -> ProbeReport:
        """Identity -> TLS handshake -> token, reporting the first step that fails and what to check."""
        step = "client identity"
        try:
            identity = self.identity
            description = identity.describe()
            step = "TLS handshake"
            tls = probe_tls(
                identity.ssl_context(),
                self.settings.base_url,
                timeout=self.settings.transport.connect_timeout,
                answer_timeout=self.settings.transport.read_timeout,
            )
            step = "token"
            token = self._fetch_token()
        except BankingApiError as exc:
            return ProbeReport(False, step, f"Failed at the {step} step: {exc.message}", exc.hint)
        warnings = " ".join(identity.warnings)
        message = (
            f"Connected over {tls} with client certificate {description.subject} "
            f"(expires in {description.days_left} days); the bank issued a token valid for "
            f"{int(token.expires_at - token.issued_at)} s. {warnings}"
        )
        return ProbeReport(True, "done", message.strip())

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._all_sessions:
                session.close()
            self._all_sessions.clear()

    def __enter__(self) -> BankingApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

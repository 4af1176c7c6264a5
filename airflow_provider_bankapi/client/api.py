"""BankingApiClient: one client identity, one token, many protected calls.

Everything here is plain Python: the Airflow hook is a thin layer that builds ``ClientSettings`` from a
Connection. The same mTLS material serves the token call and the protected calls (the bank's advice, and
RFC 8705: the token is bound to the certificate that fetched it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_bankapi.client.auth import BankTokenAuth, renewed_after_401
from airflow_provider_bankapi.client.endpoints import checked_account_id
from airflow_provider_bankapi.client.fields import DEFAULT_CACHE_SCOPE, DEFAULT_MAX_WORKERS
from airflow_provider_bankapi.client.identity.identity import load_identity
from airflow_provider_bankapi.client.redaction import Redactor
from airflow_provider_bankapi.client.tokens.cache import TokenCache, TokenStore, stores_for
from airflow_provider_bankapi.client.tokens.host import HostTokenStore
from airflow_provider_bankapi.client.tokens.kept_key import kept_cache_key
from airflow_provider_bankapi.client.tokens.request import TokenRequest
from airflow_provider_bankapi.client.tokens.values import cache_key
from airflow_provider_bankapi.client.transport.adapter import answer_of, make_session, send
from airflow_provider_bankapi.client.transport.answers import json_body, raise_for_bank_status
from airflow_provider_bankapi.errors import (
    ApiError,
    BankingApiError,
    printable,
)
from airflow_provider_bankapi.pagination import NextRequest, pagination_style

if TYPE_CHECKING:
    import requests
    from requests.adapters import BaseAdapter

    from airflow_provider_bankapi.client.batch import BatchResult
    from airflow_provider_bankapi.client.identity.identity import CertificateDescription, ClientIdentity
    from airflow_provider_bankapi.client.probe import ProbeReport
    from airflow_provider_bankapi.client.settings import ClientSettings
    from airflow_provider_bankapi.client.tokens.values import AccessToken


def unexpected_failure(error: Exception, call: str, redact: Callable[[str], str]) -> BankingApiError:
    """The error-tree error for an exception the error tree does not know, raised by ``call`` (``"GET
    /accounts/1/balance"``): its type and text, escaped and without the caller's secrets. Not transient:
    the same answer would fail the same way.
    """
    return BankingApiError(
        redact(printable(f"{call} failed unexpectedly: {type(error).__name__}: {error}")),
        hint="The call failed in a way the provider does not expect; the log holds its traceback.",
    )


def next_cursor_params(page: Any) -> dict[str, Any] | None:
    """Cursor pagination: ``{"next_cursor": "..."}`` in a page means ask again with ``cursor=...``."""
    cursor = page.get("next_cursor") if isinstance(page, Mapping) else None
    return {"cursor": cursor} if cursor else None


def balance_path(account_id: str | int) -> str:
    """The path of an account's balance: the id checked to be one segment (see :func:`checked_account_id`),
    then encoded once, which the endpoint's normalisation leaves as it is.
    """
    return f"/accounts/{quote(checked_account_id(account_id), safe='')}/balance"


class BankingApiClient:
    """A token and protected calls over one mTLS client identity.

    :param settings: where and who.
    :param token_stores: where tokens are cached, fastest first (default: the default cache scope's).
    :param clock: seconds since the epoch; injected so tests control time.
    :param on_secret: called with each token as soon as the client has it (fetched, or loaded from a
        store), so that a host (Airflow's secret masker) can hide it from logs; the host has the settings'
        secrets already, having made them.

    :attr:`redactor` knows the same tokens, the client_secret, and the key, PKCS#12 and proxy passwords:
    every excerpt of an answer goes through it, so a bank that echoes a secret in any shape never puts it in
    an error.
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
        self.redactor = Redactor([settings.client_secret, *settings.secrets()], reveal=on_secret)
        stores = list(token_stores) if token_stores is not None else stores_for(DEFAULT_CACHE_SCOPE)
        # The auth's alone (see :attr:`auth`); every token it hands out reaches the redactor and on_secret.
        self._tokens = TokenCache(
            stores, margin=settings.refresh_margin, clock=clock, on_secret=self.redactor.add
        )
        self._all_sessions: list[requests.Session] = []  # every Session this client made, closed by close()
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
        parts = (self.token_url, self.settings.client_id, self.identity.fingerprint_sha256)
        host = next((store for store in self._tokens.stores if isinstance(store, HostTokenStore)), None)
        if host is None or not self.identity.private_key_digest:
            return cache_key(*parts, self.settings.client_secret)
        # The scrypt in the key, derived by the first process on this host and kept beside its tokens.
        return kept_cache_key(host, *parts, self.settings.client_secret, self.identity.private_key_digest)

    @cached_property
    def auth(self) -> BankTokenAuth:
        """The auth of every protected request, the client's own and raw Sessions': the token attached,
        renewed once after a 401. It owns the token: the cache, and the token request on a Session of its
        own, so that fetching a token never calls back into this client.
        """
        return BankTokenAuth(self.settings, self._tokens, self._token_key, self._token_request)

    @cached_property
    def _token_request(self) -> TokenRequest:
        # A Session of its own on the calls' adapter: its own headers and no auth, the calls' kept-alive
        # connections (a cold call fetches its token and sends on one TLS connection).
        session = self._new_session(adapter=self._http.get_adapter(self.settings.base_url))
        return TokenRequest(self.settings, session, redact=self.redactor, clock=self._clock)

    def get_token(self) -> AccessToken:
        """A fresh access token: from the cache when one is fresh, else fetched once for all sharers."""
        return self.auth.token()

    # -- transport --------------------------------------------------------------------------------

    def _new_session(self, adapter: BaseAdapter | None = None) -> requests.Session:
        session = make_session(
            self.identity.ssl_context(), self.settings.transport, token_url=self.token_url, adapter=adapter
        )
        with self._sessions_lock:
            self._all_sessions.append(session)
        return session

    @cached_property
    def _http(self) -> requests.Session:
        """The one Session of the client's own calls, shared by every thread (the workers of a batch).

        Safe to share here: what a call uses of it is the adapter and urllib3's connection pool, which is
        thread-safe and holds ``pool_maxsize`` kept-alive connections (the most workers of a batch). No call
        changes the Session itself: the auth, headers and timeouts are passed per request, never set on
        it, and the bank sets no cookies (were one set, ``http.cookiejar`` takes its own lock to keep it).
        """
        return self._new_session()

    def session(self) -> requests.Session:
        """A new Session with this identity's TLS and the Bearer token on every request (renewed once after
        a 401, as for the client's own calls), for callers that want raw requests. URLs must be absolute and
        under the Base URL (``settings.url(path)`` makes one): any other is refused before a connection is
        made, so the token only ever goes to the bank.
        """
        session = self._new_session()
        session.auth = self.auth
        return session

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A protected call; non-2xx answers raise the error tree.

        A 401 means the token was revoked or expired early: the auth drops it, fetches a new one and
        sends the request again, once (see ``auth.py``).
        """
        url = self.settings.url(path)  # a path outside the Base URL is refused before a token is fetched
        # The token first, then the call: a token request never starts inside the call's own send.
        auth = self.auth.holding(self.auth.token())
        response = send(self._http, method, url, path=path, auth=auth, **kwargs)
        with answer_of(response):
            raise_for_bank_status(
                response,
                method=method,
                path=path,
                token_renewed=renewed_after_401(response),
                redact=self.redactor,
            )
        return response

    def json_of(self, response: requests.Response, *, method: str, path: str) -> Any:
        """A 2xx answer's JSON, numbers exact; a body that is not JSON: an ApiError with the request's id."""
        with answer_of(response):
            return json_body(response, method=method, path=path, redact=self.redactor)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a protected resource and decode its JSON body (a non-JSON 2xx body is an ApiError)."""
        return self.json_of(self.request("GET", path, params=params), method="GET", path=path)

    # -- typed conveniences -------------------------------------------------------------------------

    def get_balance(self, account_id: str | int) -> Any:
        """The balance of one account (``GET /accounts/{id}/balance``, the bank's documented example)."""
        return self.get_json(balance_path(account_id))

    def get_balances(
        self, account_ids: Sequence[str | int], *, max_workers: int = DEFAULT_MAX_WORKERS
    ) -> BatchResult:
        """Balances of many accounts, concurrently, every success and failure by id (``client/batch.py``)."""
        from airflow_provider_bankapi.client.batch import get_balances

        return get_balances(self, account_ids, max_workers=max_workers)

    def iter_balances(
        self, account_ids: Sequence[str | int], *, max_workers: int = DEFAULT_MAX_WORKERS
    ) -> Iterator[tuple[str, Any]]:
        """``(account_id, balance or error)`` of many accounts as they arrive (``client/batch.py``)."""
        from airflow_provider_bankapi.client.batch import iter_balances

        return iter_balances(self, account_ids, max_workers=max_workers)

    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        next_page: Callable[[Any], Mapping[str, Any] | None] = next_cursor_params,
        max_pages: int = 10_000,
        pagination: Any = None,
    ) -> Iterator[Any]:
        """Yield each page's JSON body, one GET per page.

        :param pagination: the style (``"cursor"``, ``"links"``, ``"link_header"``, ``"page"``, a value of
            ``airflow_provider_bankapi.pagination`` or a function); when None, ``next_page(page)`` gives
            the params to add.
        :param max_pages: more pages than this is an ApiError (a resource that never says "last").
        :raises NextLinkRefusedError: a next link leaves the Base URL (before any request to it).
        """
        paginator = pagination_style(next_page if pagination is None else pagination)
        first_params = getattr(paginator, "first_params", None)
        current: NextRequest | None = NextRequest(
            path, first_params(dict(params or {})) if first_params else dict(params or {})
        )
        for _ in range(max_pages):
            assert current is not None
            response = self.request("GET", current.endpoint, params=current.params)
            page = self.json_of(response, method="GET", path=current.endpoint)
            yield page
            with answer_of(response):  # a refused next link names the answer it came in
                current = paginator.next_request(
                    page,
                    response,
                    current,
                    base_url=self.settings.base_url,
                    token_path=self.settings.auth_endpoint,
                )
            if current is None:
                return
        raise ApiError(
            f"GET {path} kept returning a next page after {max_pages} pages; stopped.",
            method="GET",
            path=path,
            hint="Raise max_pages if the resource really has more pages; else check the pagination style "
            "(a function must return None on the last page).",
        )

    # -- connection test ----------------------------------------------------------------------------

    def probe(self) -> ProbeReport:
        """Identity -> TLS handshake -> token, reporting the first step that fails and what to check."""
        from airflow_provider_bankapi.client.probe import ProbeReport, probe_tls  # the connection test only

        step = "client identity"
        try:
            identity = self.identity
            description = identity.describe()
            step = "TLS handshake"
            tls = probe_tls(
                identity.ssl_context(),
                self.settings.base_url,
                timeout=self.settings.transport.connect_timeout,
                proxy=self.settings.transport.proxy,  # the tasks' route
                answer_timeout=self.settings.transport.read_timeout,
            )
            step = "token"
            token = self._token_request()  # not through the cache: the probe asks the bank itself
            self.redactor.add(token.access_token)
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

"""The HTTP transport to the bank: a requests Session whose adapter owns TLS completely.

Why an adapter that only passes ``ssl_context=`` to urllib3 is not enough: on
every request requests' ``cert_verify()`` hands ``ca_certs`` (certifi, or ``REQUESTS_CA_BUNDLE``),
``cert_file`` and ``cert_reqs`` to urllib3, which loads them *into the shared context*: its trust
store grows from the bank's CA to every public root, and one request's ``verify=``/``cert=`` leaks
into all later connections. :class:`BankingApiAdapter` therefore

- builds its pool manager (and proxy managers) with the identity's context and nothing else;
- overrides ``cert_verify`` to do nothing and ``build_connection_pool_key_attributes`` to give
  urllib3 only that context, so the pool is keyed on it and no CA/cert path ever reaches urllib3;
- refuses a per-request ``verify=``/``cert=`` (or a Session-level one) with a ConfigurationError:
  TLS comes from the connection's identity only.

The Session does not trust requests' environment (``trust_env = False``): ``REQUESTS_CA_BUNDLE``,
``CURL_CA_BUNDLE``, ``HTTP(S)_PROXY``/``NO_PROXY`` and ``~/.netrc`` are all ignored. The server is
verified by the identity's context alone: against ``ca_cert``, or, when that is empty, against
OpenSSL's default trust store, which OpenSSL's own ``SSL_CERT_FILE``/``SSL_CERT_DIR`` do change. The egress
proxy comes from :class:`TransportSettings` only, so what a task does does not depend on the
worker's shell (and ``.netrc`` cannot add credentials the connection did not ask for). Plain
``http://`` is refused: the Bearer token would travel in clear.

No redirect is ever followed: a 3xx answer raises :class:`RedirectRefusedError` in the adapter,
whatever ``allow_redirects`` the caller passed, so nothing sent to the bank is re-sent elsewhere.

Every request carries ``User-Agent: airflow-provider-bankapi/<version>`` and a fresh UUID in the interaction
id header (``x-fapi-interaction-id`` unless the connection names another; a caller's own id is kept), so
that the bank's support desk can find any request, raw Sessions' included.

Every request gets the (connect, read) timeouts of the settings unless it passes its own; an
explicit ``timeout=None`` (or a ``None`` part) also gets them, so a call to the bank never waits
forever. The read timeout bounds the whole answer (status, headers and body), not each read: a
server trickling its answer cannot stretch it (transport/deadline.py), and one attempt lasts at most
``connect_timeout + read_timeout``.

Every answer is read under a byte budget, on the wire and once inflated (transport/budget.py): the
token endpoint's answers under the fixed limit of token answers, all others under the settings'
``max_response_bytes``. The adapter reads the body itself unless the caller streams it, so a
refusal is raised by ``send`` for every caller, raw Sessions included.
"""

from __future__ import annotations

import functools
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLBLOCK, BaseAdapter, HTTPAdapter
from urllib3 import PoolManager, proxy_from_url

from airflow_provider_bankapi import __version__
from airflow_provider_bankapi.client.settings import TOKEN_ANSWER_LIMIT, TransportSettings
from airflow_provider_bankapi.client.transport.budget import BudgetedBody, declared_length, too_large
from airflow_provider_bankapi.client.transport.deadline import use_answer_deadline
from airflow_provider_bankapi.client.transport.failures import map_transport_error
from airflow_provider_bankapi.client.transport.retry import BankRetry
from airflow_provider_bankapi.errors import (
    HINT_BAD_URL,
    HINT_REDIRECT,
    HINT_TLS_OWNED,
    BankingApiError,
    ConfigurationError,
    RedirectRefusedError,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator

    from requests.models import PreparedRequest

USER_AGENT = f"airflow-provider-bankapi/{__version__}"


class BankingApiAdapter(HTTPAdapter):
    """An HTTPAdapter whose every connection uses one SSLContext, and nothing else, for TLS.

    :param ssl_context: the client identity's context (client certificate + the bank's CA).
    :param settings: timeouts, retries, pool size.
    :param token_url: the token endpoint's URL, so that its POST is retried as a token request.
    """

    def __init__(
        self, ssl_context: ssl.SSLContext, settings: TransportSettings, *, token_url: str | None = None
    ) -> None:
        # Set before super().__init__(), which builds the pool manager through init_poolmanager().
        self.ssl_context = ssl_context
        self.settings = settings
        self.token_path = urlsplit(token_url).path if token_url else None
        retry = BankRetry.from_settings(settings, token_path=self.token_path)
        super().__init__(pool_maxsize=settings.pool_maxsize, max_retries=retry)

    def __getstate__(self) -> NoReturn:
        # An SSLContext cannot be pickled; rebuilding it belongs to whoever holds the connection id.
        raise TypeError("a Banking API session cannot be pickled: build a new one from the connection")

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **pool_kwargs: Any
    ) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = use_answer_deadline(
            PoolManager(num_pools=connections, maxsize=maxsize, block=block, ssl_context=self.ssl_context)
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if proxy not in self.proxy_manager:
            # https targets go through CONNECT: the tunnel carries our TLS, the proxy never sees it.
            # The proxy's own TLS (an https:// proxy) keeps urllib3's default context: the client
            # certificate is for the bank only.
            self.proxy_manager[proxy] = use_answer_deadline(
                proxy_from_url(
                    proxy,
                    proxy_headers=self.proxy_headers(proxy),
                    num_pools=self._pool_connections,
                    maxsize=self._pool_maxsize,
                    block=self._pool_block,
                    ssl_context=self.ssl_context,
                )
            )
        return self.proxy_manager[proxy]

    def build_connection_pool_key_attributes(  # type: ignore[override]  # the stub requires cert_reqs
        self, request: PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = urlsplit(request.url)
        host_params = {"scheme": parts.scheme.lower(), "host": parts.hostname, "port": parts.port}
        # Only the context: no ca_certs, cert_file or cert_reqs ever reaches urllib3, and the pool
        # key (which includes the context) keeps pools of different identities apart.
        return host_params, {"ssl_context": self.ssl_context}

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Do nothing: requests' version writes CA and certificate paths into the shared context."""

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        if verify is not True or cert is not None:
            what = f"verify={verify!r}" if verify is not True else "cert=..."  # a cert path is not echoed
            raise ConfigurationError(
                f"{what} conflicts with the connection's TLS identity and is refused.", hint=HINT_TLS_OWNED
            )
        name = self.settings.interaction_id_header
        if name and not request.headers.get(name):
            request.headers[name] = str(uuid.uuid4())
        response = super().send(
            request,
            stream=True,  # the body is read below, under its budget
            timeout=self._timeouts(timeout),
            verify=True,
            cert=None,
            proxies=proxies,
        )
        if 300 <= response.status_code < 400 and response.status_code != 304:
            # Refused here, below Session.request, so that no caller (allow_redirects=True included)
            # can follow it: a redirected request would carry the secret or the token elsewhere.
            response.close()
            error = redirect_refused(response)
            error.interaction_id = interaction_id_of(response)
            raise error
        self._budget(request, response)
        if not stream:
            response.content  # noqa: B018 - read now, under the budget, as requests would have done
        return response

    def _budget(self, request: PreparedRequest, response: requests.Response) -> None:
        """Put the answer's body behind its byte budget; refuse at once one that says it is larger."""
        method = (request.method or "").upper()
        path = urlsplit(request.url or "").path
        if method == "POST" and path == self.token_path:
            limit, setting = min(TOKEN_ANSWER_LIMIT, self.settings.max_response_bytes), None
        else:
            limit, setting = self.settings.max_response_bytes, "max_response_bytes"
        refuse = functools.partial(
            too_large, method=method, path=path, status=response.status_code, limit=limit, setting=setting
        )
        length = declared_length(response.raw)
        body = BudgetedBody(response.raw, limit, refuse)
        response.raw = body
        if method != "HEAD" and response.status_code not in (204, 304) and (length or 0) > limit:
            body.refuse()

    def _timeouts(self, timeout: Any) -> Any:
        """The request's (connect, read) timeouts, the settings' standing in for any that is None."""
        if timeout is None:
            return self.settings.timeout
        if isinstance(timeout, tuple) and len(timeout) == 2:
            connect, read = timeout
            return (
                self.settings.connect_timeout if connect is None else connect,
                self.settings.read_timeout if read is None else read,
            )
        return timeout  # a number (both parts) or a urllib3 Timeout, as requests takes them


@contextmanager
def answer_of(response: requests.Response) -> Iterator[None]:
    """Errors raised about ``response`` carry the interaction id of its request."""
    try:
        yield
    except BankingApiError as exc:
        exc.interaction_id = exc.interaction_id or interaction_id_of(response)
        raise


def interaction_id_of(response: requests.Response) -> str | None:
    """The interaction id of an answer: the one the bank echoed, else the one sent; None when none is sent."""
    adapter = response.connection
    name = adapter.settings.interaction_id_header if isinstance(adapter, BankingApiAdapter) else ""
    if not name:
        return None
    sent = response.request.headers.get(name) if response.request is not None else None
    return response.headers.get(name) or sent


def redirect_refused(response: requests.Response) -> RedirectRefusedError:
    """The error for a 3xx answer: its status and the Location's host, never the whole Location."""
    request = response.request
    method = (request.method or "").upper()
    path = urlsplit(request.url or "").path
    host = location_host(response.headers.get("Location"), request.url or "")
    status = f"{response.status_code} {response.reason}".strip()
    return RedirectRefusedError(
        f"{method} {path} answered {status}, a redirect to {host}: not followed.",
        status_code=response.status_code,
        method=method,
        path=path,
        location_host=host,
        hint=HINT_REDIRECT,
    )


def location_host(location: str | None, request_url: str) -> str:
    """``host[:port]`` of a Location header (its path and query may hold a token and are never shown)."""
    if not location:
        return "nowhere (no Location header)"
    parts = urlsplit(location.strip())
    if not parts.netloc:
        return f"{urlsplit(request_url).hostname} (the same host)"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or 'an unreadable host'}{f':{port}' if port else ''}"


class _PlainHttpRefused(HTTPAdapter):
    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> NoReturn:
        raise ConfigurationError(
            "The Banking API is only reachable over https: a plain http:// URL would send the token "
            "in clear without mutual TLS.",
            field="host",
            hint=HINT_BAD_URL,
        )


def make_session(
    ssl_context: ssl.SSLContext,
    settings: TransportSettings | None = None,
    *,
    token_url: str | None = None,
    adapter: BaseAdapter | None = None,
) -> requests.Session:
    """A Session for the bank: TLS from ``ssl_context`` only, retries, timeouts, the egress proxy.

    One Session keeps its connections alive (one TLS handshake for many calls), in urllib3's pool, which
    is thread-safe: threads may share a Session that no call changes (auth and headers passed per
    request; ``http.cookiejar`` locks its own jar).

    :param ssl_context: the client identity's context (``ClientIdentity.ssl_context()``).
    :param settings: timeouts, retries, pool size, proxy (defaults when None).
    :param token_url: the token endpoint's URL: its POST is also retried after 502/504.
    :param adapter: another Session's adapter, to share its connections (made from the other arguments
        when None).
    """
    settings = settings or TransportSettings()
    session = requests.Session()
    session.trust_env = False  # see the module docstring: requests' variables change nothing
    session.headers["User-Agent"] = USER_AGENT
    session.proxies = {"https": settings.proxy} if settings.proxy else {}
    session.mount("https://", adapter or BankingApiAdapter(ssl_context, settings, token_url=token_url))
    session.mount("http://", _PlainHttpRefused())
    return session


def send(session: requests.Session, method: str, url: str, *, path: str, **kwargs: Any) -> requests.Response:
    """``session.request`` with JSON asked for; a failure with no answer becomes the error tree's, naming
    ``path`` (the one place where a request to the bank is sent, the token request's and the calls').
    """
    headers = dict(kwargs.pop("headers", None) or {})
    headers.setdefault("Accept", "application/json")
    try:
        return session.request(method, url, headers=headers, **kwargs)
    except requests.RequestException as exc:
        # The bank's reason first: the three exceptions requests and urllib3 wrap a TLS failure in say
        # nothing the error's fields (reason, verify_code) do not, and a task log would print them above
        # it. The original stays on __context__ for a debugger.
        raise map_transport_error(exc, method=method, path=path) from None

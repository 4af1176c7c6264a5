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

The Session does not trust the environment (``trust_env = False``): ``REQUESTS_CA_BUNDLE``,
``CURL_CA_BUNDLE``, ``HTTP(S)_PROXY``/``NO_PROXY`` and ``~/.netrc`` are all ignored. The egress
proxy comes from :class:`TransportSettings` only, so what a task does does not depend on the
worker's shell (and ``.netrc`` cannot add credentials the connection did not ask for). Plain
``http://`` is refused: the Bearer token would travel in clear.

Every request gets the (connect, read) timeouts of the settings unless it passes its own; an
explicit ``timeout=None`` also gets them, so a call to the bank never waits forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
from urllib3 import PoolManager, proxy_from_url

from airflow_provider_bankapi.client.classify import json_body, raise_for_bank_status
from airflow_provider_bankapi.client.probe import TlsSessionInfo, probe_tls
from airflow_provider_bankapi.client.retry import BankRetry
from airflow_provider_bankapi.client.transport_errors import HINT_BAD_URL, map_transport_error
from airflow_provider_bankapi.errors import ConfigurationError

if TYPE_CHECKING:
    import ssl

    from requests.models import PreparedRequest

__all__ = [
    "BankingApiAdapter",
    "TlsSessionInfo",
    "TransportSettings",
    "json_body",
    "make_session",
    "map_transport_error",
    "probe_tls",
    "raise_for_bank_status",
]

HINT_TLS_OWNED = (
    "Trust (ca_cert) and the client certificate come from the Airflow connection's identity; do not "
    "pass verify= or cert= to the session or to a request."
)


@dataclass(frozen=True)
class TransportSettings:
    """How to talk to the bank: timeouts, retries, pool size, egress proxy.

    :param connect_timeout: seconds to set up a connection (TCP + TLS).
    :param read_timeout: seconds to wait for each read of an answer.
    :param max_retries: retries after the first attempt, where retrying is safe (see retry.py).
    :param backoff_base: first backoff window in seconds (full jitter, doubling each retry).
    :param backoff_max: largest backoff window in seconds.
    :param max_total_wait: budget in seconds for all the waits of one call; a retry that would
        pass it is not made (a longer ``Retry-After`` included).
    :param proxy: egress proxy URL (``http://[user:password@]host:port``; https targets go through
        a CONNECT tunnel, so TLS stays end to end with the bank). Hidden from repr: it may hold a password.
    :param pool_maxsize: connections kept per host; at least the number of threads sharing a session.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_total_wait: float = 120.0
    proxy: str | None = field(default=None, repr=False)
    pool_maxsize: int = 10

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout"):
            if not _positive(getattr(self, name)):
                raise ConfigurationError(f"{name} must be a positive number of seconds.", field=name)
        for name in ("backoff_base", "backoff_max", "max_total_wait"):
            if not _positive(getattr(self, name), allow_zero=True):
                raise ConfigurationError(f"{name} must be a number of seconds >= 0.", field=name)
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ConfigurationError("max_retries must be a whole number >= 0.", field="max_retries")
        if (
            isinstance(self.pool_maxsize, bool)
            or not isinstance(self.pool_maxsize, int)
            or self.pool_maxsize < 1
        ):
            raise ConfigurationError("pool_maxsize must be a whole number >= 1.", field="pool_maxsize")
        if self.proxy is not None:
            parts = urlsplit(self.proxy)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                # The proxy URL may hold a password: it is never echoed.
                raise ConfigurationError(
                    "proxy must be an http:// or https:// URL with a host (http://host:port).", field="proxy"
                )

    @property
    def timeout(self) -> tuple[float, float]:
        """The (connect, read) pair requests takes."""
        return (self.connect_timeout, self.read_timeout)

    def retry(self) -> BankRetry:
        """The retry policy of one call (a fresh value; urllib3 derives one per attempt)."""
        return BankRetry(
            self.max_retries,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            max_total_wait=self.max_total_wait,
        )


def _positive(value: object, *, allow_zero: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 if allow_zero else value > 0


class BankingApiAdapter(HTTPAdapter):
    """An HTTPAdapter whose every connection uses one SSLContext, and nothing else, for TLS.

    :param ssl_context: the client identity's context (client certificate + the bank's CA).
    :param settings: timeouts, retries, pool size.
    """

    def __init__(self, ssl_context: ssl.SSLContext, settings: TransportSettings) -> None:
        # Set before super().__init__(), which builds the pool manager through init_poolmanager().
        self.ssl_context = ssl_context
        self.settings = settings
        super().__init__(pool_maxsize=settings.pool_maxsize, max_retries=settings.retry())

    def __getstate__(self) -> NoReturn:
        # An SSLContext cannot be pickled; rebuilding it belongs to whoever holds the connection id.
        raise TypeError("a Banking API session cannot be pickled: build a new one from the connection")

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **pool_kwargs: Any
    ) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = PoolManager(
            num_pools=connections, maxsize=maxsize, block=block, ssl_context=self.ssl_context
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if proxy not in self.proxy_manager:
            # https targets go through CONNECT: the tunnel carries our TLS, the proxy never sees it.
            # The proxy's own TLS (an https:// proxy) keeps urllib3's default context: the client
            # certificate is for the bank only.
            self.proxy_manager[proxy] = proxy_from_url(
                proxy,
                proxy_headers=self.proxy_headers(proxy),
                num_pools=self._pool_connections,
                maxsize=self._pool_maxsize,
                block=self._pool_block,
                ssl_context=self.ssl_context,
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
        if timeout is None:
            timeout = self.settings.timeout
        return super().send(request, stream=stream, timeout=timeout, verify=True, cert=None, proxies=proxies)


class _PlainHttpRefused(HTTPAdapter):
    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> NoReturn:
        raise ConfigurationError(
            "The Banking API is only reachable over https: a plain http:// URL would send the token "
            "in clear without mutual TLS.",
            field="host",
            hint=HINT_BAD_URL,
        )


def make_session(ssl_context: ssl.SSLContext, settings: TransportSettings | None = None) -> requests.Session:
    """A Session for the bank: TLS from ``ssl_context`` only, retries, timeouts, the egress proxy.

    One Session keeps its connections alive (one TLS handshake for many calls); requests does not
    promise a Session is thread-safe, so give each thread its own, all sharing one context.

    :param ssl_context: the client identity's context (``ClientIdentity.ssl_context()``).
    :param settings: timeouts, retries, pool size, proxy (defaults when None).
    """
    settings = settings or TransportSettings()
    session = requests.Session()
    session.trust_env = False  # see the module docstring: the environment changes nothing
    session.proxies = {"https": settings.proxy} if settings.proxy else {}
    session.mount("https://", BankingApiAdapter(ssl_context, settings))
    session.mount("http://", _PlainHttpRefused())
    return session

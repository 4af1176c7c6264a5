"""What the client needs to reach the bank, and every default, defined once.

The connection form (``get_provider_info``), the hook (a Connection turned into settings) and the client
all read the defaults from here, so the form, the hook and the client never disagree. Standard library
only (and the connection's identity fields, themselves plain values): ``get_provider_info`` runs in every
Airflow component during provider discovery.

The Base URL is a plain https URL: no ``user:password@`` (requests would send it as
``Authorization: Basic`` in place of the Bearer token), no query and no fragment. Where an endpoint
resolves under it is ``endpoints.py``'s rule, which :meth:`ClientSettings.url` asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from airflow_provider_bankapi.client.endpoints import endpoint_url, normalise_endpoint
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.errors import ConfigurationError

PRODUCTION_BASE_URL = "https://api.bancodigital.com/public/gw_banking/v1"
#: The token endpoint's path under the Base URL.
TOKEN_PATH = "/auth/token-v2"
#: The bank's sample client renews its token 5 minutes before expiry.
DEFAULT_REFRESH_MARGIN = 300.0
#: Where tokens are shared: every process of a host, every worker (an Airflow Variable), one process, none.
CACHE_SCOPES = ("host", "cluster", "process", "off")
DEFAULT_CACHE_SCOPE = "host"
#: Warn when the client certificate expires within this many days.
DEFAULT_EXPIRY_WARNING_DAYS = 30

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_MAX_TOTAL_WAIT = 120.0
DEFAULT_POOL_MAXSIZE = 10
#: The request header that carries a fresh UUID per request (Open Finance Brasil's name; the bank's support
#: desk asks for it first). Empty sends none.
DEFAULT_INTERACTION_ID_HEADER = "x-fapi-interaction-id"
#: The connection's ``interaction_id_header`` value that sends no interaction id.
NO_INTERACTION_ID = "none"
# An HTTP header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def cache_scope(value: object) -> str:
    """The cache scope a connection asks for (``None`` is the default), or a ConfigurationError naming it."""
    if value is None:
        return DEFAULT_CACHE_SCOPE
    scope = value.strip().lower() if isinstance(value, str) else repr(value)
    if scope not in CACHE_SCOPES:
        raise ConfigurationError(
            f"cache_scope must be one of {', '.join(CACHE_SCOPES)}; got {scope!r}.", field="cache_scope"
        )
    return scope


def check_base_url(base_url: str) -> None:
    """Refuse a Base URL that is not a plain https URL (the password in ``user:pw@`` is never echoed).

    requests would turn ``user:pw@`` into ``Authorization: Basic`` in place of the Bearer token, and a
    query or fragment would be glued onto every endpoint.
    """
    parts = urlsplit(base_url or "")
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError(
            "The Base URL must be an https:// URL such as " + PRODUCTION_BASE_URL + ".", field="host"
        )
    for present, what in (
        ("@" in parts.netloc, "a user name or password (user:password@)"),
        ("?" in base_url, "a query string ('?')"),
        ("#" in base_url, "a fragment ('#')"),
    ):
        if present:
            raise ConfigurationError(
                f"The Base URL must not hold {what}: give the bank's API URL only, such as "
                f"{PRODUCTION_BASE_URL}; the credential goes in the Client ID and Client secret fields.",
                field="host",
            )


@dataclass(frozen=True)
class TransportSettings:
    """How to talk to the bank: timeouts, retries, pool size, egress proxy.

    :param connect_timeout: seconds to set up a connection (TCP + TLS).
    :param read_timeout: seconds for the whole answer (status, headers and body) once the request
        is sent, however slowly it trickles in; an attempt lasts at most connect + read timeout.
    :param max_retries: retries after the first attempt, where retrying is safe (see transport/retry.py).
    :param backoff_base: first backoff window in seconds (full jitter, doubling each retry).
    :param backoff_max: largest backoff window in seconds.
    :param max_total_wait: budget in seconds for all the waits of one call; a retry that would
        pass it is not made (a longer ``Retry-After`` included).
    :param proxy: egress proxy URL (``http://[user:password@]host:port``; https targets go through
        a CONNECT tunnel, so TLS stays end to end with the bank). Hidden from repr: it may hold a password.
    :param pool_maxsize: connections kept per host; at least the number of threads sharing a session.
    :param interaction_id_header: the header that carries a fresh UUID on every request (empty: none).
    """

    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    max_total_wait: float = DEFAULT_MAX_TOTAL_WAIT
    proxy: str | None = field(default=None, repr=False)
    pool_maxsize: int = DEFAULT_POOL_MAXSIZE
    interaction_id_header: str = DEFAULT_INTERACTION_ID_HEADER

    def __post_init__(self) -> None:
        if self.interaction_id_header and not _HEADER_NAME.fullmatch(self.interaction_id_header):
            raise ConfigurationError(
                f"interaction_id_header {self.interaction_id_header[:80]!r} is not an HTTP header name "
                f"(letters, digits and -, such as {DEFAULT_INTERACTION_ID_HEADER}); empty sends none.",
                field="interaction_id_header",
            )
        for name in ("connect_timeout", "read_timeout"):
            if not _seconds(getattr(self, name)):
                raise ConfigurationError(f"{name} must be a positive number of seconds.", field=name)
        for name in ("backoff_base", "backoff_max", "max_total_wait"):
            if not _seconds(getattr(self, name), allow_zero=True):
                raise ConfigurationError(f"{name} must be a number of seconds >= 0.", field=name)
        if not _whole(self.max_retries, minimum=0):
            raise ConfigurationError("max_retries must be a whole number >= 0.", field="max_retries")
        if not _whole(self.pool_maxsize, minimum=1):
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
    auth_endpoint: str = TOKEN_PATH
    refresh_margin: float = DEFAULT_REFRESH_MARGIN
    transport: TransportSettings = field(default_factory=TransportSettings)
    expiry_warning_days: int = DEFAULT_EXPIRY_WARNING_DAYS

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
                f"auth_endpoint must be a path such as {TOKEN_PATH}.", field="auth_endpoint"
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


def _seconds(value: object, *, allow_zero: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 if allow_zero else value > 0


def _whole(value: object, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

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
from functools import cached_property
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

#: Balance calls at once in a batch unless the caller says otherwise.
DEFAULT_MAX_WORKERS = 4
#: The most balance calls one task makes at once: beyond it the bank's rate limit answers, not the bank.
MAX_WORKERS = 16
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_MAX_TOTAL_WAIT = 120.0
DEFAULT_POOL_MAXSIZE = MAX_WORKERS  # one kept-alive connection per worker: a batch shares one Session
#: The request header that carries a fresh UUID per request (Open Finance Brasil's name; the bank's support
#: desk asks for it first). Empty sends none.
DEFAULT_INTERACTION_ID_HEADER = "x-fapi-interaction-id"
#: The connection's ``interaction_id_header`` value that sends no interaction id.
NO_INTERACTION_ID = "none"
# An HTTP header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: The largest answer of a protected call, in bytes, on the wire and once inflated (gzip/deflate): a
#: balance is a few hundred bytes, a page of statements some kilobytes. Raise it per connection or per
#: operator (``max_response_bytes``) for a resource that is legitimately larger.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: The largest token answer, in bytes: a token answer is a few hundred bytes; a megabyte is a wrong
#: endpoint, not a token. Not configurable (a lower ``max_response_bytes`` lowers it too).
TOKEN_ANSWER_LIMIT = 1024 * 1024

#: The range each number of the settings may take, ``(least, largest)``, both included unless the
#: field is in :data:`ABOVE_ZERO`. Far beyond any real need, and small enough that sockets, sleeps and
#: clocks take them: ``timeout=1e10`` used to pass and fail every call with a bare OverflowError.
RANGES: dict[str, tuple[float, float]] = {
    "connect_timeout": (0, 3600),
    "read_timeout": (0, 3600),
    "max_retries": (0, 100),
    "backoff_base": (0, 3600),
    "backoff_max": (0, 3600),
    "max_total_wait": (0, 86400),
    "pool_maxsize": (1, 1000),
    "max_response_bytes": (1024, 1024**3),
    "refresh_margin": (0, 86400),
    "expiry_warning_days": (0, 3650),
}
ABOVE_ZERO = frozenset({"connect_timeout", "read_timeout"})
WHOLE_NUMBERS = frozenset({"max_retries", "pool_maxsize", "max_response_bytes", "expiry_warning_days"})


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
    if _has_control_character(base_url or ""):
        # A NUL or a line break would be cut, or sent, by some layer below and not by another.
        raise ConfigurationError(
            "The Base URL holds a control character or a space: give the bank's API URL only, such as "
            + PRODUCTION_BASE_URL
            + ".",
            field="host",
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme != "https" or not parts.hostname or port == 0:
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


def check_proxy(proxy: str) -> None:
    """Refuse a proxy URL the transport could not use, naming the proxy field (never echoing the URL: it
    may hold a password). Checked here, or the failure would come at the first call and blame the Base URL.
    """
    try:
        parts = urlsplit(proxy)
        usable = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not _has_control_character(proxy)
            and parts.port != 0  # reading the port also refuses one that is not a number from 0 to 65535
        )
    except ValueError:  # a port that is not a number, an unclosed [IPv6 address
        usable = False
    if not usable:
        raise ConfigurationError(
            "proxy must be an http:// or https:// URL with a host and, optionally, a port from 1 to 65535 "
            "(http://host:port), with no spaces or control characters.",
            field="proxy",
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
    :param max_response_bytes: the largest answer, in bytes, on the wire and once inflated; a larger one
        is refused while it is read (:class:`~airflow_provider_bankapi.errors.ResponseTooLargeError`).
        Token answers keep :data:`TOKEN_ANSWER_LIMIT`.
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
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        if self.interaction_id_header and not _HEADER_NAME.fullmatch(self.interaction_id_header):
            raise ConfigurationError(
                f"interaction_id_header {self.interaction_id_header[:80]!r} is not an HTTP header name "
                f"(letters, digits and -, such as {DEFAULT_INTERACTION_ID_HEADER}); empty sends none.",
                field="interaction_id_header",
            )
        for name in (
            "connect_timeout",
            "read_timeout",
            "backoff_base",
            "backoff_max",
            "max_total_wait",
            "max_retries",
            "pool_maxsize",
            "max_response_bytes",
        ):
            check_range(name, getattr(self, name))
        if self.proxy is not None:
            check_proxy(self.proxy)

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
        check_range("refresh_margin", self.refresh_margin)
        check_range("expiry_warning_days", self.expiry_warning_days)

    def url(self, path: str) -> str:
        """The absolute URL of a protected resource's path under the Base URL (see ``endpoints.py``).

        A path that resolves outside the Base URL's path or onto the token endpoint is refused.
        """
        return endpoint_url(self.base_url, path, token_endpoint=self.auth_endpoint)

    @cached_property
    def token_url(self) -> str:
        """The absolute URL of the token endpoint (resolved once: the settings never change)."""
        return endpoint_url(self.base_url, self.auth_endpoint)


# C0 and C1 controls, DEL and spaces: none belongs in a URL, and layers below cut or send them apart.
_CONTROL_CHARACTER = re.compile("[\x00-\x20\x7f-\x9f]")


def _has_control_character(text: str) -> bool:
    return _CONTROL_CHARACTER.search(text) is not None


def describe_range(name: str) -> str:
    """``name``'s range in words, for an error: "a whole number from 0 to 100"."""
    least, largest = RANGES[name]
    if name in WHOLE_NUMBERS:
        return f"a whole number from {int(least)} to {int(largest)}"
    if name in ABOVE_ZERO:
        return f"a number above {least:g} and at most {largest:g}"
    return f"a number from {least:g} to {largest:g}"


def in_range(name: str, value: object) -> bool:
    """Whether ``value`` is a number of the kind and range :data:`RANGES` gives ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False  # JSON true is not 1 second
    if name in WHOLE_NUMBERS and not isinstance(value, int):
        return False
    least, largest = RANGES[name]
    # NaN fails both comparisons; infinity fails the upper bound.
    return (least < value if name in ABOVE_ZERO else least <= value) and value <= largest


def check_range(name: str, value: object, *, where: str | None = None) -> None:
    """Refuse a number out of ``name``'s range, naming the field (``where``, else ``name``) and the range."""
    if not in_range(name, value):
        shown = repr(value) if isinstance(value, (int, float)) else type(value).__name__
        raise ConfigurationError(
            f"{where or name} must be {describe_range(name)}; got {shown}.", field=where or name
        )

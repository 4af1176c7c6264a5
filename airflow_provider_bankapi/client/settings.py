"""What the client needs to reach the bank: the settings, checked once when they are made.

Their defaults and ranges are the table of connection fields' (``fields.py``), as the form and the hook
read them; everything below the settings takes them as they are and checks nothing again.

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
from airflow_provider_bankapi.client.fields import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_EXPIRY_WARNING_DAYS,
    DEFAULT_INTERACTION_ID_HEADER,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_TOTAL_WAIT,
    DEFAULT_POOL_MAXSIZE,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REFRESH_MARGIN,
    EXTRA_FIELDS,
    FIELD,
    KEY_MATERIAL_FIELDS,
    PRODUCTION_BASE_URL,
    TOKEN_PATH,
    check_range,
)
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.errors import ConfigurationError

# C0 and C1 controls, DEL and spaces: none belongs in a URL, and layers below cut or send them apart.
_CONTROL_CHARACTER = re.compile("[\x00-\x20\x7f-\x9f]")
# An HTTP header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: The largest token answer, in bytes: a token answer is a few hundred bytes; a megabyte is a wrong
#: endpoint, not a token. Not configurable (a lower ``max_response_bytes`` lowers it too).
TOKEN_ANSWER_LIMIT = 1024 * 1024


def cache_scope(value: object) -> str:
    """The cache scope a connection asks for (``None`` is the default), or a ConfigurationError naming it."""
    scope: str = FIELD["cache_scope"].read(value)
    return scope


def check_base_url(base_url: str) -> None:
    """Refuse a Base URL that is not a plain https URL (the password in ``user:pw@`` is never echoed).

    requests would turn ``user:pw@`` into ``Authorization: Basic`` in place of the Bearer token, and a
    query or fragment would be glued onto every endpoint.
    """
    parts = urlsplit(base_url or "")
    if _CONTROL_CHARACTER.search(base_url or ""):
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
            and not _CONTROL_CHARACTER.search(proxy)
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
    :param auth_endpoint: the token path under the base URL (kept normalised, see ``endpoints.py``).
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
        # Kept normalised: the token request, the token URL and the refusal of a call onto it use it as is.
        token_path = normalise_endpoint(self.auth_endpoint, field="auth_endpoint")
        object.__setattr__(self, "auth_endpoint", token_path)
        check_range("refresh_margin", self.refresh_margin)
        check_range("expiry_warning_days", self.expiry_warning_days)

    def url(self, path: str) -> str:
        """The absolute URL of a protected resource's path under the Base URL (see ``endpoints.py``).

        A path that resolves outside the Base URL's path or onto the token endpoint is refused.
        """
        return endpoint_url(self.base_url, path, token_endpoint=self.auth_endpoint)

    def secrets(self, *, key_material: bool = False) -> list[str | bytes]:
        """The secret values of the settings besides the client_secret, as the table of connection fields
        marks them: the key and PKCS#12 passwords and the proxy's password, and with ``key_material`` the
        private key and the PKCS#12 bundle too. Unset ones and paths are left out.
        """
        proxy = self.transport.proxy
        # Where each secret extra lands in the settings: the identity's under their own names.
        landed = {"proxy": urlsplit(proxy).password if proxy else None}
        found: list[str | bytes] = []
        for extra in EXTRA_FIELDS:
            if extra.secret and (key_material or extra.key not in KEY_MATERIAL_FIELDS):
                value = landed[extra.key] if extra.key in landed else getattr(self.identity, extra.key)
                if isinstance(value, (str, bytes)) and value:
                    found.append(value)
        return found

    @cached_property
    def token_url(self) -> str:
        """The absolute URL of the token endpoint (resolved once: the settings never change)."""
        return self.base_url.rstrip("/") + self.auth_endpoint


__all__ = [
    "TOKEN_ANSWER_LIMIT",
    "ClientSettings",
    "TransportSettings",
    "cache_scope",
    "check_base_url",
    "check_proxy",
]

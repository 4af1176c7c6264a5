"""The auth of raw Sessions handed to callers: the Bearer token, for URLs under the Base URL only.

A caller with a raw Session can send it anywhere; the token and the client certificate are for the
bank alone, so any other URL is refused before a connection is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_provider_bankapi.client.endpoints import endpoint_url
from airflow_provider_bankapi.client.settings import TOKEN_PATH
from airflow_provider_bankapi.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests

    from airflow_provider_bankapi.client.tokens.values import AccessToken


class BankOnlyBearerAuth:
    """requests auth hook: the current token on each request whose URL is under ``base_url``.

    :param base_url: the Base URL; a request to another scheme, host, port or path prefix is refused.
    :param token: returns the current token (fetched or cached as needed), called per request.
    :param auth_endpoint: the token path, which a request carrying the token must not resolve to.
    """

    def __init__(
        self, base_url: str, token: Callable[[], AccessToken], *, auth_endpoint: str = TOKEN_PATH
    ) -> None:
        self._base_url = base_url
        self._base = _origin_and_path(base_url)
        self._auth_endpoint = auth_endpoint
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = request.url or ""
        origin, path = _origin_and_path(url)
        prefix = self._base[1].rstrip("/")
        if (
            origin != self._base[0]
            or urlsplit(url).username is not None
            or not (path == prefix or path.startswith(prefix + "/"))
        ):
            raise ConfigurationError(
                "This session only calls URLs under the connection's Base URL: the Bearer token and the "
                "client certificate are for the bank alone.",
                field="endpoint",
                hint=HINT_SESSION_URL,
            )
        # The same rule as the client's own calls; a path it would rewrite (dot segments, encoded
        # slashes...) is refused rather than sent as it is.
        resolved = endpoint_url(self._base_url, path[len(prefix) :], token_endpoint=self._auth_endpoint)
        if urlsplit(resolved).path.rstrip("/") != path.rstrip("/"):
            raise ConfigurationError(
                f"The path {path[len(prefix) :]!r} is not in normal form (dot segments, '//', encoded "
                "slashes or backslashes).",
                field="endpoint",
                hint=HINT_SESSION_URL,
            )
        request.headers["Authorization"] = f"Bearer {self._token().access_token}"
        return request


HINT_SESSION_URL = "Build URLs with client.settings.url('/accounts/123/balance')."


def _origin_and_path(url: str) -> tuple[tuple[str, str, int], str]:
    parts = urlsplit(url)
    try:
        port = parts.port or 443
    except ValueError:
        port = -1
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port), parts.path

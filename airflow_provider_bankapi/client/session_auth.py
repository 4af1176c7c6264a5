"""The auth of raw Sessions handed to callers: the Bearer token, for URLs under the Base URL only.

A caller with a raw Session can send it anywhere; the token and the client certificate are for the
bank alone, so any other URL is refused before a connection is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_provider_bankapi.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests

    from airflow_provider_bankapi.client.token_values import AccessToken


class BankOnlyBearerAuth:
    """requests auth hook: the current token on each request whose URL is under ``base_url``.

    :param base_url: the Base URL; a request to another scheme, host, port or path prefix is refused.
    :param token: returns the current token (fetched or cached as needed), called per request.
    """

    def __init__(self, base_url: str, token: Callable[[], AccessToken]) -> None:
        self._base = _origin_and_path(base_url.rstrip("/") + "/")
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        origin, path = _origin_and_path(request.url or "")
        if origin != self._base[0] or not (path.rstrip("/") + "/").startswith(self._base[1]):
            raise ConfigurationError(
                "This session only calls URLs under the connection's Base URL: the Bearer token and the "
                "client certificate are for the bank alone.",
                field="endpoint",
                hint="Build URLs with client.settings.url('/accounts/123/balance').",
            )
        request.headers["Authorization"] = f"Bearer {self._token().access_token}"
        return request


def _origin_and_path(url: str) -> tuple[tuple[str, str, int], str]:
    parts = urlsplit(url)
    try:
        port = parts.port or 443
    except ValueError:
        port = -1
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port), parts.path

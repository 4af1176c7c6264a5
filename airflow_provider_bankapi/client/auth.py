"""The Bearer token on every request to the bank, and its one renewal after a 401.

One auth object serves every entry point: the client's own calls and the raw Sessions handed to callers
(``client.session()``, ``hook.get_conn()``). It attaches the current token (from the token cache, fetched
once for all sharers on a miss) to requests whose URL is under the Base URL, and refuses any other URL
before a connection is made: the token and the client certificate are for the bank alone. A 401 means the
token was revoked or expired early: the token is forgotten, a new one is fetched, and the request is sent
again once, as requests' own ``HTTPDigestAuth`` re-sends after its challenge.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from requests.auth import AuthBase
from requests.utils import rewind_body

from airflow_provider_bankapi.client.endpoints import endpoint_url, path_under_base
from airflow_provider_bankapi.errors import HINT_SESSION_URL, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests

    from airflow_provider_bankapi.client.settings import ClientSettings
    from airflow_provider_bankapi.client.tokens.cache import TokenCache
    from airflow_provider_bankapi.client.tokens.values import AccessToken


class BankTokenAuth(AuthBase):
    """requests auth: the cached token on each request under the Base URL, renewed once after a 401.

    :param settings: the Base URL (a request to another scheme, host, port or path prefix is refused)
        and the token path (which a request carrying the token must not resolve to).
    :param tokens: the token cache shared by every sharer of the credential.
    :param key: the credential's cache key (token URL, client_id, certificate, secret).
    :param fetch: asks the bank for a new token; called by the cache on a miss.
    """

    def __init__(
        self,
        settings: ClientSettings,
        tokens: TokenCache,
        key: str,
        fetch: Callable[[], AccessToken],
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._key = key
        self._fetch = fetch

    def token(self) -> AccessToken:
        """A fresh token: from the cache when one is fresh, else fetched once for all sharers."""
        return self._tokens.get(self._key, self._fetch)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self._check_url(request.url or "")
        return self._attach(request, self.token())

    def holding(self, token: AccessToken) -> Callable[[requests.PreparedRequest], requests.PreparedRequest]:
        """The auth of one request of the client's own, with its token already in hand: the client asks
        for the token before it sends (so a token request never starts inside a call's send) and has
        checked the URL itself. A 401 renews it as for every request.
        """
        return partial(self._attach, token=token)

    def _attach(self, request: requests.PreparedRequest, token: AccessToken) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        request.hooks["response"].append(partial(self._renew_after_401, token))
        return request

    def _renew_after_401(
        self, sent: AccessToken, response: requests.Response, **send_options: Any
    ) -> requests.Response:
        """Forget a refused token, fetch a new one and send the request again, once.

        The second answer is the caller's, whatever its status: the adapter sends it without
        dispatching hooks, so it is never renewed again.
        """
        if response.status_code != 401 or response.request is None:
            return response
        response.content  # noqa: B018 - read the refusal so that its connection goes back to the pool
        response.close()
        fresh = self._tokens.get(self._key, self._fetch, refused=sent)
        again = response.request.copy()
        if getattr(again, "_body_position", None) is not None:  # requests' own mark of a rewindable body
            rewind_body(again)
        again.headers["Authorization"] = f"Bearer {fresh.access_token}"
        name = self._settings.transport.interaction_id_header
        if name:
            again.headers.pop(name, None)  # a request of its own: the adapter stamps it a fresh id
        answer = response.connection.send(again, **send_options)
        answer.history.append(response)
        answer.request = again
        return answer

    def _check_url(self, url: str) -> None:
        path = path_under_base(self._settings.base_url, url)
        if path is None:
            raise ConfigurationError(
                "This session only calls URLs under the connection's Base URL: the Bearer token and the "
                "client certificate are for the bank alone.",
                field="endpoint",
                hint=HINT_SESSION_URL,
            )
        # The same rule as the client's own calls; a path it would rewrite (dot segments, encoded
        # slashes...) is refused rather than sent as it is.
        base = self._settings.base_url.rstrip("/")
        resolved = endpoint_url(base, path, token_endpoint=self._settings.auth_endpoint)
        if resolved.rstrip("/") != (base + path).rstrip("/"):
            raise ConfigurationError(
                f"The path {path!r} is not in normal form (dot segments, '//', encoded "
                "slashes or backslashes).",
                field="endpoint",
                hint=HINT_SESSION_URL,
            )


def renewed_after_401(response: requests.Response) -> bool:
    """Whether this answer came after a refused token was renewed (no redirect is followed, so a
    response's history holds only that refusal).
    """
    return any(earlier.status_code == 401 for earlier in response.history)

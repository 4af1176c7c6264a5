"""The token request: the client credentials POSTed as JSON to the token endpoint, on a Session of its own.

The token cache calls it on a miss, under its locks. It sends on a Session of its own, never through the
client that asked for the token, as google-auth's ``AuthorizedSession`` refreshes through a separate
request object: a call goes down the layers once (client -> auth -> token cache -> token request -> bank)
and never loops back into the client. That Session may share the calls' adapter (the same TLS identity,
timeouts, retries, proxy and kept-alive connections): the token and the first call then take one
handshake.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from airflow_provider_bankapi.client.tokens.values import parse_token_response
from airflow_provider_bankapi.client.transport.adapter import answer_of, send
from airflow_provider_bankapi.client.transport.answers import raise_for_bank_status

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests

    from airflow_provider_bankapi.client.settings import ClientSettings
    from airflow_provider_bankapi.client.tokens.values import AccessToken

log = logging.getLogger(__name__)


class TokenRequest:
    """Asks the bank for a new access token (client credentials grant, JSON body).

    :param settings: the token URL, the credential and the transport.
    :param session: the Session the token requests go out on, without auth of its own.
    :param redact: removes the client's secrets from any excerpt of a refusal.
    :param clock: epoch seconds, injected so tests control time.
    """

    def __init__(
        self,
        settings: ClientSettings,
        session: requests.Session,
        *,
        redact: Callable[[str], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._session = session
        self._redact = redact
        self._clock = clock

    def __call__(self) -> AccessToken:
        settings = self._settings
        body = {
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "grant_type": "client_credentials",
        }
        # The bank wants JSON here, where most OAuth libraries send a form (docs/bank-contract.md).
        path = settings.auth_endpoint
        response = send(self._session, "POST", settings.token_url, path=path, json=body)
        with answer_of(response):
            raise_for_bank_status(response, method="POST", path=path, redact=self._redact)
        token = parse_token_response(response.content, now=self._clock())
        log.info(
            "Fetched a new access token for client_id %s (expires in %d s).",
            settings.client_id,
            token.expires_at - token.issued_at,
        )
        return token

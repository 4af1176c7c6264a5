"""One error tree for everything the Banking API provider raises.

::

    BankingApiError
    ├── ConfigurationError                 a connection field is missing or malformed (names it)
    │   ├── ClientIdentityError            cert/key/PFX unreadable, wrong password, key ≠ cert, expired
    │   └── UnsupportedAirflowError        the installed Airflow is older than the provider needs (3.3)
    ├── TlsHandshakeError                  TLS failed: server not trusted, or client cert rejected
    ├── ConnectionFailedError              no HTTP answer: refused, unresolved, timed out or dropped
    ├── TokenResponseError                 the token endpoint answered 2xx with an unusable body
    └── ApiError                           the bank answered an error status: status_code, body excerpt, hint
        ├── InvalidCredentialsError        401 Invalid Credentials
        ├── InvalidClientCertificateError  401 Invalid Client Certificate (or a gateway's 400/495/496)
        ├── ForbiddenError                 403: the source IP is not on the credential's allowlist
        ├── RateLimitedError               429 after retries
        ├── ServerError                    5xx after retries
        ├── RedirectRefusedError           3xx: the Banking API has no redirects; none is followed
        ├── ResponseTooLargeError          an answer past its byte limit, refused while it was read
        └── NextLinkRefusedError           a page's next link leaves the Base URL; it is not followed

Every error says whether it is ``transient``: True when the same call may succeed later without a change
of configuration (429, 5xx, no answer, a TLS connection dropped for a reason other than the client
certificate or an untrusted server, a 408/425 answer), so that a caller that waits (the sensors, the
trigger) backs off and tries again instead of giving up. Everything else (credentials, certificate,
allowlist, configuration, another 4xx the bank will keep answering) is not.

Every error that comes from an answer of the bank carries ``interaction_id``, the
``x-fapi-interaction-id`` of the request (the one the bank echoed, else the one sent), the first thing
the bank's support desk asks for; its text shows it too.

Callers branch on the types and their attributes, never on message text. No message or
attribute ever holds a client_secret, a token, a password or key material. Standard library only.
"""

from __future__ import annotations

# The bank's own troubleshooting checklists, in English (docs/bank-contract.md, "Failures the bank names").
HINT_INVALID_CREDENTIALS = (
    "Check the connection's Client ID (login) and Client secret (password), and that the credential "
    "is active in the bank's back office (CORE)."
)
HINT_INVALID_CLIENT_CERTIFICATE = (
    "Check that the client certificate sent is the one bound to the credential in CORE, that it has "
    "not expired, that the private key matches the certificate, and that the certificate comes from "
    "the right chain for this environment."
)
HINT_FORBIDDEN = (
    "Check that the public source IP of this worker is on the credential's allowlist in CORE, and that "
    "the call leaves through the expected IP (egress proxy, NAT)."
)
HINT_TLS_HANDSHAKE = (
    "Check that the client really sends its certificate and key (client_cert + client_private_key, or "
    "client_pfx_secret), that the PFX password is right, and that ca_cert trusts the bank's server "
    "for this environment."
)
HINT_CLIENT_CERTIFICATE_REJECTED = (
    "The bank closed the TLS connection because of the client certificate. " + HINT_INVALID_CLIENT_CERTIFICATE
)
HINT_SERVER_NOT_TRUSTED = (
    "The bank's server certificate is not trusted: set ca_cert to the CA of this environment, and check "
    "the host name in the Base URL."
)
HINT_RATE_LIMITED = (
    "The bank is throttling requests. Lower the concurrency (max_workers, pools) or let the token "
    "cache share one token (cache_scope host or cluster)."
)
HINT_SERVER_ERROR = "The bank's side failed. Try again later; if it keeps failing, ask the bank."
HINT_REDIRECT = (
    "The Banking API has no redirects, so none is followed: the client secret, tokens and the client "
    "certificate only go to the Base URL. Check the connection's Base URL (host, port and path)."
)
HINT_RESPONSE_TOO_LARGE = (
    "If the resource is legitimately this large (a long statement), raise the limit: the connection's "
    "max_response_bytes extra, or the operator's max_response_bytes argument. Otherwise check the path: "
    "no balance or token answer is anywhere near this size."
)
HINT_TOKEN_ANSWER_TOO_LARGE = (
    "A token answer is a few hundred bytes, so this limit is fixed: check the connection's auth_endpoint "
    "(the token endpoint's path) and the Base URL."
)
HINT_CONNECTION_FAILED = (
    "Check the Base URL (host and port), that this worker can reach it (DNS, firewall, the egress proxy "
    "setting), and that the bank's environment is up."
)
HINT_PAGINATION = (
    "Give pagination='cursor', 'links', 'link_header' or 'page', a Cursor/Links/LinkHeader/PageNumbers "
    "value (airflow_provider_bankapi.pagination) for other names, or a function "
    "page -> params of the next page (None on the last)."
)
HINT_DROPPED = (
    HINT_CONNECTION_FAILED + " If every call fails like this right after connecting, the bank may be "
    "refusing the client certificate: run the connection test."
)
HINT_PROXY = (
    "Check the egress proxy setting (URL, port, credentials) and that the proxy allows CONNECT to the bank; "
    "for an https:// proxy, that its certificate is trusted by the system's CAs (or by OpenSSL's "
    "SSL_CERT_FILE on the worker)."
)
HINT_BAD_URL = "Set the connection's Base URL to https://HOST[:PORT]/public/gw_banking/v1."
HINT_HEADERS_TOO_LARGE = (
    "No Banking API answer has headers that large: check the Base URL, and the egress proxy or gateway "
    "on the way, which may answer in the bank's place."
)
HINT_TOKEN_REFUSED = (
    "The bank refused the access token: it was revoked, expired early, or was fetched with another "
    "client certificate. Fetch a new token and retry the call once."
)
HINT_FRESH_TOKEN_REFUSED = (
    "A fresh token was fetched and was also refused, so the fault is not the token's age. "
    + HINT_INVALID_CREDENTIALS
    + " "
    + HINT_INVALID_CLIENT_CERTIFICATE
)
HINT_UNAUTHENTICATED = HINT_INVALID_CREDENTIALS + " " + HINT_INVALID_CLIENT_CERTIFICATE
HINT_NOT_FOUND = (
    "Check the path and the identifiers in it: paths are relative to the Base URL (.../public/gw_banking/v1)."
)
HINT_NOT_JSON = "Check the endpoint path: it should name a JSON resource under the Base URL."
HINT_CERTIFICATE_NOT_SENT = (
    "The bank's gateway received no client certificate. Check that the connection's certificate and "
    "key fields are set (client_cert + client_private_key, or client_pfx_secret) and that the private "
    "key matches the certificate."
)
HINT_CERTIFICATE_NOT_VERIFIED = (
    "The bank's gateway could not verify the client certificate: it is not issued by a CA the bank "
    "trusts for this environment (a certificate from another environment's chain?), it has expired, or "
    "client_cert lacks its intermediates (leaf first, then intermediates)."
)
HINT_TLS_OWNED = (
    "Trust (ca_cert) and the client certificate come from the Airflow connection's identity; do not "
    "pass verify= or cert= to the session or to a request."
)
HINT_ENDPOINT = (
    "Give a path relative to the Base URL, such as /accounts/123/balance. Query parameters go in params "
    "(query_params for the operator), never in the endpoint."
)
HINT_ACCOUNT_ID = (
    "Give the account id as the bank lists it (GET /accounts), such as 123: it is one segment of the "
    "path /accounts/{id}/balance, never a path of its own."
)
HINT_SESSION_URL = "Build URLs with client.settings.url('/accounts/123/balance')."
HINT_SCHEDULE = (
    "Give the DAG a schedule whose runs cover an interval, e.g. CronTriggerTimetable('0 0 * * *', "
    "timezone='America/Sao_Paulo', interval=timedelta(days=1)) or CronDataIntervalTimetable: Airflow 3's "
    "plain cron schedules give runs an empty data interval. A run triggered by hand needs a logical date "
    '(the trigger form\'s Logical date, or "logical_date" in the REST API): without one it has no data '
    "interval at all."
)


def printable(text: str) -> str:
    r"""``text`` safe to put in a message or a log line: every character that is not printable (a newline,
    ESC, any other control or format character) is written as its Python escape (``\n``, ``\x1b``,
    ``\u202e``), so text from outside (an account id, a bank's body) can never start a forged log line
    or drive a terminal.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class BankingApiError(Exception):
    """Root of every error this provider raises.

    :param message: what went wrong, free of secrets.
    :param hint: what to check, usually the bank's own checklist.
    """

    #: True when the same call may succeed later with nothing changed (see the module's docstring).
    transient: bool = False
    #: The id of the request the bank answered (see the module's docstring), None when no answer came.
    interaction_id: str | None = None

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        request = f" (interaction id {self.interaction_id})" if self.interaction_id else ""
        return f"{self.message}{request} {self.hint}".strip()


class ConfigurationError(BankingApiError):
    """A connection field is missing or malformed; ``field`` names it."""

    def __init__(self, message: str, *, field: str | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.field = field


class ClientIdentityError(ConfigurationError):
    """The client certificate, key or PKCS#12 bundle cannot serve as a client identity."""


class UnsupportedAirflowError(ConfigurationError):
    """The installed Airflow is older than 3.3; ``found`` is its version."""

    def __init__(self, *, found: str) -> None:
        super().__init__(
            f"airflow-provider-bankapi needs Apache Airflow 3.3 or newer; this environment has {found}.",
            hint='Upgrade Airflow (pip install "apache-airflow>=3.3") in every component that imports '
            "the provider: API server, scheduler, DAG processor, triggerer and workers.",
        )
        self.found = found


class TlsHandshakeError(BankingApiError):
    """The TLS connection failed before the bank answered over HTTP.

    :param reason: OpenSSL's reason (``TLSV13_ALERT_CERTIFICATE_REQUIRED``...), if known.
    :param verify_code: OpenSSL's verify code when the server's certificate was not trusted.
    :param client_certificate_rejected: True when the bank (probably) refused the client certificate.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        reason: str | None = None,
        verify_code: int | None = None,
        client_certificate_rejected: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.verify_code = verify_code
        self.client_certificate_rejected = client_certificate_rejected
        # A rejected client certificate or an untrusted server stays that way; a reset mid-handshake may not.
        self.transient = not client_certificate_rejected and verify_code is None


class ConnectionFailedError(BankingApiError):
    """No HTTP answer came back: connection refused, host not resolved, timed out, or dropped.

    Raised after the transport's retries ran out (or at once where retrying was not safe). Transient.

    :param method: the HTTP method.
    :param path: the path called, without the query string.
    :param timed_out: True when a connect or read timeout expired.
    :param request_sent: True when the request was (or may have been) sent before the failure: a call
        that is not idempotent may have taken effect at the bank.
    """

    transient = True

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        method: str | None = None,
        path: str | None = None,
        timed_out: bool = False,
        request_sent: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        self.method = method
        self.path = path
        self.timed_out = timed_out
        self.request_sent = request_sent


class TokenResponseError(BankingApiError):
    """The token endpoint answered 2xx with a body that holds no usable token; ``field`` names the fault."""

    def __init__(self, message: str, *, field: str | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.field = field


# A request timeout (408) or "too early" (425) says nothing about the request itself: it may pass later.
_STATUSES_THAT_PASS = frozenset({408, 425})


class ApiError(BankingApiError):
    """The bank answered with an error status (or a 2xx body that is not what was asked for).

    :param status_code: the HTTP status.
    :param method: the HTTP method.
    :param path: the path called, without the query string.
    :param body_excerpt: a short, size-capped excerpt of the body (never a token or secret).
    :param bank_reason: the bank's phrase found in the body ("Invalid Credentials"...), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        body_excerpt: str = "",
        bank_reason: str | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code
        self.method = method
        self.path = path
        self.body_excerpt = body_excerpt
        self.bank_reason = bank_reason
        if status_code in _STATUSES_THAT_PASS:
            self.transient = True


class InvalidCredentialsError(ApiError):
    """401 Invalid Credentials: client_id or client_secret wrong, or the credential inactive."""


class InvalidClientCertificateError(ApiError):
    """401 Invalid Client Certificate, or a TLS terminator's 400/495/496 page for a bad client certificate."""


class ForbiddenError(ApiError):
    """403 Forbidden: the source IP is not on the credential's allowlist."""


class RateLimitedError(ApiError):
    """429 after the retries ran out (transient); ``retry_after`` is the bank's last advice in seconds."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx after the retries ran out. Transient."""

    transient = True


class RedirectRefusedError(ApiError):
    """A 3xx answer: never followed, so no secret, token or certificate reaches another address.

    :param location_host: the host (and port) the answer pointed to, never the whole Location: its
        query could hold a token.
    """

    def __init__(self, message: str, *, location_host: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.location_host = location_host


class ResponseTooLargeError(ApiError):
    """An answer larger than its limit, on the wire or once inflated: the reading stopped at the limit.

    :param limit: the limit in bytes.
    :param setting: the setting that holds the limit (``max_response_bytes``), or None for the fixed limit
        of token answers.
    """

    def __init__(
        self, message: str, *, limit: int | None = None, setting: str | None = None, **kwargs: object
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.limit = limit
        self.setting = setting
        self.transient = False  # the same resource will be as large next time


class NextLinkRefusedError(ApiError):
    """A page's next link points outside the Base URL (another host, port, scheme or path): never followed,
    so the token and the client certificate only go to the bank's API.

    :param link_host: the host (and port) the link points to, never the whole link: its query could hold
        a token.
    """

    def __init__(self, message: str, *, link_host: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.link_host = link_host

"""The Banking API's rules, as pure request -> response logic (the sockets live in server.py).

The TLS layer has already verified the client certificate against the sandbox CA (a foreign,
expired or missing certificate never gets here: the handshake fails, as at a real gateway).
What is left is what the bank's documentation says it checks for a token, in its order
(docs/bank-contract.md):

1. the credential: client_id + client_secret valid, credential active -> else 401 Invalid Credentials
2. the certificate of the handshake is bound to that credential -> else 401 Invalid Client Certificate
3. the source IP is on the credential's allowlist -> else 403 Forbidden

The credential comes first because the other two are properties *of* the credential; the bank
lists them in this order both where it says what it checks and in its troubleshooting table.
Tokens are bound to the SHA-256 thumbprint of the certificate that fetched them (RFC 8705): a
protected call over another certificate gets 401 ``invalid_token``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from bankapi_sandbox import data
from bankapi_sandbox.provision import BASE_PATH

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bankapi_sandbox.core import Credential, CredentialStore
    from bankapi_sandbox.state import SandboxState

# The phrases of the bank's documented failures (docs/bank-contract.md): clients look for them in the body.
INVALID_CREDENTIALS = "Invalid Credentials"
INVALID_CLIENT_CERTIFICATE = "Invalid Client Certificate"
FORBIDDEN = "Forbidden"

TOKEN_PATH = "/auth/token-v2"
#: The request id header, echoed on every answer (Open Finance Brasil's name).
INTERACTION_ID = "x-fapi-interaction-id"
_BALANCE = re.compile(r"/accounts/([^/]+)/balance")
# Sandbox illustrations of an Open Finance Brasil bank: data/links/meta pages, a Link header, decimal numbers.
_OPEN_FINANCE_TRANSACTIONS = re.compile(r"/open-banking/accounts/([^/]+)/transactions")
_OPEN_FINANCE_BALANCES = re.compile(r"/open-banking/accounts/([^/]+)/balances")
_LINKED_TRANSACTIONS = re.compile(r"/linked/accounts/([^/]+)/transactions")
_TRANSACTIONS = re.compile(r"/accounts/([^/]+)/transactions")
_STATEMENT = re.compile(r"/accounts/([^/]+)/statement\.csv")
_ILLUSTRATION = (("X-Sandbox-Illustration", "true"),)
_REQUIRED_FIELDS = ("client_id", "client_secret", "grant_type")


@dataclass(frozen=True)
class Request:
    """One HTTP request as the handler saw it; ``headers`` keys are lowercase."""

    method: str
    target: str  # path and query, as on the request line
    headers: Mapping[str, str]
    body: bytes
    peer_ip: str
    certificate_fingerprint: str


@dataclass(frozen=True)
class Response:
    """A JSON body (a dict or a list), or raw bytes sent as they are with their ``content_type``."""

    status: int
    body: dict[str, Any] | list[Any] | bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


_DECIMAL = re.compile(r'"\\u0000decimal:(-?[0-9.E+-]+)"')


def json_text(body: Any) -> str:
    """A JSON body as text, its ``Decimal`` numbers written with their own digits (``1000.0400``, never the
    float ``1000.04``): marked as text by ``json``, then unquoted.
    """

    def mark(value: object) -> str:
        if isinstance(value, Decimal) and value.is_finite():
            return f"\u0000decimal:{value}"
        raise TypeError(f"{type(value).__name__} is not JSON")

    return _DECIMAL.sub(r"\1", json.dumps(body, default=mark))


def error(
    status: int, code: str, message: str, detail: str = "", headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """A JSON error body: the bank's phrase in ``message``, an OAuth-style ``error`` code beside it."""
    body: dict[str, Any] = {"error": code, "message": message, "status": status}
    if detail:
        body["error_description"] = detail
    return Response(status, body, headers)


def _invalid_token(detail: str) -> Response:
    # RFC 6750 section 3: a rejected bearer token is announced in WWW-Authenticate.
    challenge = f'Bearer realm="Banking API sandbox", error="invalid_token", error_description="{detail}"'
    return error(401, "invalid_token", "Unauthorized", detail, (("WWW-Authenticate", challenge),))


class BankApi:
    """Answers the contract's requests from the CORE store and the running state.

    :param store: the credentials (re-read whenever ``core.json`` changes).
    :param state: knobs, counters and tokens.
    """

    def __init__(self, store: CredentialStore, state: SandboxState) -> None:
        self.store = store
        self.state = state

    def handle(self, request: Request) -> Response:
        parts = urlsplit(request.target)
        path = parts.path
        if not path.startswith(BASE_PATH + "/"):
            self.state.count("api_requests")
            return error(404, "not_found", "Not Found", f"every path is under {BASE_PATH}")
        path = path[len(BASE_PATH) :].rstrip("/")
        if path == TOKEN_PATH:
            if request.method != "POST":
                return error(
                    405, "method_not_allowed", "Method Not Allowed", "use POST", (("Allow", "POST"),)
                )
            return self.token(request)
        self.state.count("api_requests")
        if request.method != "GET":
            return error(405, "method_not_allowed", "Method Not Allowed", "use GET", (("Allow", "GET"),))
        return self.protected(request, path, parse_qs(parts.query))

    # -- POST /auth/token-v2 ------------------------------------------------------------------

    def _refuse(self, reason: str, response: Response) -> Response:
        self.state.count_refused(reason)
        return response

    def token(self, request: Request) -> Response:
        fields = self._token_fields(request)
        if isinstance(fields, Response):
            return self._refuse("invalid_request", fields)
        if fields["grant_type"] != "client_credentials":
            return self._refuse(
                "unsupported_grant_type",
                error(
                    400, "unsupported_grant_type", "Bad Request", 'grant_type must be "client_credentials"'
                ),
            )
        credential = self.store.get(fields["client_id"])
        if (
            credential is None
            or not credential.check_secret(fields["client_secret"])
            or not credential.active
        ):
            return self._refuse("invalid_credentials", error(401, "invalid_client", INVALID_CREDENTIALS))
        if not credential.is_bound(request.certificate_fingerprint):
            return self._refuse(
                "invalid_client_certificate",
                error(
                    401,
                    "invalid_client",
                    INVALID_CLIENT_CERTIFICATE,
                    "the client certificate of this connection is not bound to the credential",
                ),
            )
        if not credential.allows_ip(request.peer_ip):
            return self._refuse(
                "forbidden", error(403, "forbidden", FORBIDDEN, "source IP not on the credential's allowlist")
            )
        lifetime = self.state.token_lifetime
        token = self.state.tokens.issue(credential.client_id, request.certificate_fingerprint, lifetime)
        self.state.count("tokens_issued")
        # RFC 6749 section 5.1: token responses must not be cached.
        no_store = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
        return Response(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}, no_store
        )

    def _token_fields(self, request: Request) -> dict[str, str] | Response:
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            found = content_type or "none"
            return error(
                400,
                "invalid_request",
                "Bad Request",
                f"the token request body must be JSON with Content-Type: application/json (got {found}); "
                'send {"client_id": ..., "client_secret": ..., "grant_type": "client_credentials"}, '
                "not a form-encoded body",
            )
        try:
            body = json.loads(request.body)
        except (UnicodeDecodeError, ValueError):
            return error(400, "invalid_request", "Bad Request", "the body is not valid JSON")
        if not isinstance(body, dict):
            return error(400, "invalid_request", "Bad Request", "the body must be a JSON object")
        missing = [name for name in _REQUIRED_FIELDS if not isinstance(body.get(name), str) or not body[name]]
        if missing:
            return error(
                400,
                "invalid_request",
                "Bad Request",
                f"required field(s) missing or not a non-empty string: {', '.join(missing)}",
            )
        return {name: body[name] for name in _REQUIRED_FIELDS}

    # -- protected calls ----------------------------------------------------------------------

    def _authorize(self, request: Request) -> Credential | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            challenge = 'Bearer realm="Banking API sandbox"'
            return error(
                401,
                "unauthorized",
                "Unauthorized",
                "send Authorization: Bearer <access_token>",
                (("WWW-Authenticate", challenge),),
            )
        issued = self.state.tokens.lookup(token.strip())
        if issued is None:
            return _invalid_token("the access token is not one this server issued")
        if issued.revoked:
            return _invalid_token("the access token was revoked")
        if self.state.tokens.is_expired(issued):
            return _invalid_token("the access token expired")
        if issued.certificate_fingerprint != request.certificate_fingerprint:
            return _invalid_token("the access token is bound to another client certificate (RFC 8705)")
        credential = self.store.get(issued.client_id)
        if credential is None or not credential.active:
            return _invalid_token("the credential of this token is no longer active")
        if not credential.is_bound(request.certificate_fingerprint):
            return _invalid_token("the certificate of this token is no longer bound to its credential")
        if not credential.allows_ip(request.peer_ip):
            return error(403, "forbidden", FORBIDDEN, "source IP not on the credential's allowlist")
        return credential

    def protected(self, request: Request, path: str, query: dict[str, list[str]]) -> Response:
        route = self._route(path)
        if route is None:
            return error(404, "not_found", "Not Found", f"no resource {path}")
        credential = self._authorize(request)
        if isinstance(credential, Response):
            return credential
        kind, account_id = route
        if kind == "balance":
            body = data.balance(account_id)
            body["available"] = self.state.available(account_id) or body["available"]
            return Response(200, body)
        if kind == "accounts":
            return Response(200, data.accounts(credential.client_id), _ILLUSTRATION)
        if kind == "statement":
            if not _accepts_csv(request.headers.get("accept", "*/*")):
                detail = "this resource is text/csv: send Accept: text/csv"
                return error(406, "not_acceptable", "Not Acceptable", detail)
            statement = data.statement_csv(account_id).encode()
            return Response(200, statement, _ILLUSTRATION, content_type="text/csv; charset=utf-8")
        if kind == "open_finance_balances":
            return Response(200, data.open_finance_balances(account_id, _here(request, path)), _ILLUSTRATION)
        if kind in ("open_finance_transactions", "linked_transactions"):
            return self._numbered_page(kind, account_id, request, path, query)
        try:
            page = data.transactions(account_id, _first(query, "cursor"), _first(query, "limit"))
        except data.BadRequest as exc:
            return error(400, "invalid_request", "Bad Request", str(exc))
        return Response(200, page, _ILLUSTRATION)

    @staticmethod
    def _numbered_page(
        kind: str, account_id: str, request: Request, path: str, query: dict[str, list[str]]
    ) -> Response:
        # A next link on another origin (``next-origin``) is the sandbox's way to show a link the client
        # must refuse; a real bank's links stay on its own host.
        origin = _first(query, "next-origin") or f"https://{request.headers.get('host', 'localhost')}"
        try:
            page = data.numbered_page(
                account_id, _first(query, "page"), _first(query, "page-size"), f"{origin}{BASE_PATH}{path}"
            )
        except data.BadRequest as exc:
            return error(400, "invalid_request", "Bad Request", str(exc))
        if kind == "open_finance_transactions":
            return Response(200, page, _ILLUSTRATION)
        headers: tuple[tuple[str, str], ...] = _ILLUSTRATION
        if page["links"].get("next"):
            headers += (("Link", f'<{page["links"]["next"]}>; rel="next"'),)
        return Response(200, page["data"], headers)

    @staticmethod
    def _route(path: str) -> tuple[str, str] | None:
        if path == "/accounts":
            return "accounts", ""
        routes = (
            ("balance", _BALANCE),
            ("transactions", _TRANSACTIONS),
            ("statement", _STATEMENT),
            ("open_finance_transactions", _OPEN_FINANCE_TRANSACTIONS),
            ("open_finance_balances", _OPEN_FINANCE_BALANCES),
            ("linked_transactions", _LINKED_TRANSACTIONS),
        )
        for kind, pattern in routes:
            match = pattern.fullmatch(path)
            if match and data.ACCOUNT_ID.fullmatch(match.group(1)):
                return kind, match.group(1)
        return None


def _accepts_csv(accept: str) -> bool:
    """Whether an Accept header admits ``text/csv`` (content negotiation, without the q-values)."""
    ranges = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return bool(ranges & {"text/csv", "text/*", "*/*"})


def _here(request: Request, path: str) -> str:
    """The absolute URL of the resource asked for, as the client addressed it (its Host header)."""
    return f"https://{request.headers.get('host', 'localhost')}{BASE_PATH}{path}"


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None

"""The bank's HTTP answers, mapped to the error tree.

The bank does not document the JSON shape of its error bodies (docs/bank-contract.md), so nothing here
depends on one: the bank's phrase ("Invalid Credentials", "Invalid Client Certificate",
"Forbidden") is looked for, case-insensitively, in every string of a JSON body however nested, or
in the raw text of any other body; the status code decides when no phrase is found. Every error
keeps a short excerpt of the body, scrubbed of anything that looks like a token or a secret and of the
actual secret values the caller knows (a :class:`~airflow_provider_bankapi.client.redaction.Redactor`),
with control characters escaped so that a body cannot forge or rewrite lines of a log.

A hostile body cannot escape the error tree: JSON is walked iteratively and only :data:`MAX_DEPTH`
levels deep, however deep it nests.

Decisions worth knowing:

- A 401 without a phrase on a call that carried a Bearer token most likely means the token was
  revoked or expired early: a plain :class:`ApiError` (``status_code`` 401) whose hint says so, so
  the API layer can drop the token, fetch a new one and retry once. Without a Bearer token (the
  token call) it points at both the credential and the certificate checklists.
- A TLS terminator that rejects a client certificate answers with a page of its own (400/401/495/
  496; nginx: "400 No required SSL certificate was sent", "400 The SSL certificate error"):
  :class:`InvalidClientCertificateError`, as the bank's own 401 Invalid Client Certificate, with
  the checklist that fits what the page says: no certificate was sent (the connection's fields),
  or the certificate was not verified (the chain of this environment). The bank's own phrase keeps
  its checklist (is the certificate the one bound to the credential).
- The bank's phrase wins over the status for 4xx answers; 429 and 5xx keep their meaning whatever
  the body says.
"""

from __future__ import annotations

import http
import json
import re
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_bankapi.client.transport.retry import SITE_OVERLOADED, parse_retry_after
from airflow_provider_bankapi.documents import loads
from airflow_provider_bankapi.errors import (
    HINT_CERTIFICATE_NOT_SENT,
    HINT_CERTIFICATE_NOT_VERIFIED,
    HINT_FORBIDDEN,
    HINT_FRESH_TOKEN_REFUSED,
    HINT_INVALID_CLIENT_CERTIFICATE,
    HINT_INVALID_CREDENTIALS,
    HINT_NOT_FOUND,
    HINT_NOT_JSON,
    HINT_RATE_LIMITED,
    HINT_SERVER_ERROR,
    HINT_TOKEN_REFUSED,
    HINT_UNAUTHENTICATED,
    ApiError,
    ForbiddenError,
    InvalidClientCertificateError,
    InvalidCredentialsError,
    RateLimitedError,
    ServerError,
    printable,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import requests

# The phrases of the bank's documented failures (docs/bank-contract.md), most specific first.
INVALID_CLIENT_CERTIFICATE = "Invalid Client Certificate"
INVALID_CREDENTIALS = "Invalid Credentials"
FORBIDDEN = "Forbidden"
BANK_PHRASES = (INVALID_CLIENT_CERTIFICATE, INVALID_CREDENTIALS, FORBIDDEN)

EXCERPT_LIMIT = 300  # characters kept of a body on an error
SCAN_LIMIT = 64 * 1024  # bytes of a body read to look for a phrase (a gateway page can be large)
# Levels of a JSON body walked for phrases and secrets; deeper members are left out of the excerpt,
# which shows a few hundred characters anyway.
MAX_DEPTH = 64

_PHRASE_PATTERNS = tuple((phrase, re.compile(rf"\b{re.escape(phrase.lower())}\b")) for phrase in BANK_PHRASES)
_SEPARATORS = re.compile(r"[\s_\-]+")
# What TLS terminators write when they refuse a client certificate (nginx, Kong, Envoy, F5...),
# matched on the normalised text (lower case, runs of spaces, "_" and "-" as one space).
_NO_CERTIFICATE_PAGE = re.compile(
    r"no required (?:ssl|tls) certificate|(?:ssl|tls|client) certificate (?:is )?(?:required|missing)"
    r"|no (?:ssl |tls )?client certificate"
)
_UNVERIFIED_CERTIFICATE_PAGE = re.compile(
    r"(?:ssl|tls) certificate error|certificate (?:failed )?verif|failed verification|unknown ca"
    r"|bad certificate|certificate (?:has )?(?:expired|revoked|unknown)"
)
_CERTIFICATE_PAGE = re.compile(r"ssl certificate|tls certificate|client certificate")
CERTIFICATE_PAGE_STATUSES = frozenset({400, 401, 495, 496})

_SECRET_NAME = r"(?:token|secret|password|passwd|authorization|api_?key|private_?key)"
_SECRET_KEY = re.compile(_SECRET_NAME, re.IGNORECASE)
_SCRUBBERS = (
    # PEM private keys, whole or cut off.
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
        "[private key removed]",
    ),
    # "access_token": "..." in JSON that did not parse (cut off, or not quite JSON).
    (
        re.compile(r'("[^"]*' + _SECRET_NAME + r'[^"]*"\s*:\s*)"(?:[^"\\]|\\.)*"?', re.IGNORECASE),
        r'\1"***"',
    ),
    # access_token=... in a form or query string.
    (re.compile(r"(\b\w*" + _SECRET_NAME + r"\w*=)[^&\s\"']+", re.IGNORECASE), r"\1***"),
    # Authorization values, wherever they are echoed.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), r"\1 ***"),
    # JSON Web Tokens anywhere.
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*"), "***"),
)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


# -- pure questions ------------------------------------------------------------------------------


def decode_body(content: bytes) -> str:
    """The first :data:`SCAN_LIMIT` bytes of a body as text (undecodable bytes replaced)."""
    return content[:SCAN_LIMIT].decode("utf-8", errors="replace")


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else []


def _strings(value: Any) -> Iterator[str]:
    # Iterative, so that a body nested hundreds deep cannot exhaust the stack.
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            yield item
        elif depth < MAX_DEPTH:
            stack.extend((child, depth + 1) for child in reversed(_children(item)))


def _parse_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def _normalise(text: str) -> str:
    # "INVALID_CREDENTIALS", "invalid-credentials" and "Invalid  Credentials" all read the same.
    return _SEPARATORS.sub(" ", text).lower()


def find_bank_phrase(text: str) -> str | None:
    """The bank's phrase in a body: in any string of a JSON body (nested), else in the raw text.

    :param text: the body as text.
    :returns: the phrase as the bank spells it (:data:`BANK_PHRASES`), or None.
    """
    is_json, value = _parse_json(text)
    haystacks = [_normalise(s) for s in _strings(value)] if is_json else [_normalise(text)]
    for phrase, pattern in _PHRASE_PATTERNS:
        if any(pattern.search(haystack) for haystack in haystacks):
            return phrase
    return None


def gateway_certificate_refusal(status: int, text: str) -> tuple[str, str] | None:
    """What a TLS terminator's "bad client certificate" page says, as ``(what happened, hint)``.

    :param status: the HTTP status (pages come as 400, 401, 495 or 496).
    :param text: the body as text; only its first :data:`SCAN_LIMIT` characters are read.
    :returns: None when the answer is not such a page.
    """
    if status not in CERTIFICATE_PAGE_STATUSES:
        return None
    page = _normalise(text[:SCAN_LIMIT])
    if status == 496 or _NO_CERTIFICATE_PAGE.search(page):
        return "the bank's gateway says no client certificate was sent", HINT_CERTIFICATE_NOT_SENT
    if status == 495 or _UNVERIFIED_CERTIFICATE_PAGE.search(page):
        return "the bank's gateway could not verify the client certificate", HINT_CERTIFICATE_NOT_VERIFIED
    if _CERTIFICATE_PAGE.search(page):
        return "the bank's gateway refused the client certificate", HINT_INVALID_CLIENT_CERTIFICATE
    return None


def _mask(value: Any) -> Any:
    """A copy of a JSON value with the members named like secrets masked, cut at :data:`MAX_DEPTH`."""
    if not isinstance(value, (dict, list)):
        return value
    root: dict[Any, Any] | list[Any] = {} if isinstance(value, dict) else []
    stack: list[tuple[dict[Any, Any] | list[Any], dict[Any, Any] | list[Any], int]] = [(value, root, 1)]
    while stack:
        source, target, depth = stack.pop()
        members = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in members:
            copied: Any = item
            if isinstance(source, dict) and _SECRET_KEY.search(str(key)):
                copied = "***"
            elif isinstance(item, (dict, list)) and depth >= MAX_DEPTH:
                copied = "…"
            elif isinstance(item, (dict, list)):
                copied = {} if isinstance(item, dict) else []
                stack.append((item, copied, depth + 1))
            if isinstance(target, dict):
                target[key] = copied
            else:
                target.append(copied)
    return root


def scrub(text: str) -> str:
    """``text`` with tokens, secrets, passwords, Authorization values and private keys masked."""
    is_json, value = _parse_json(text)
    if is_json and isinstance(value, (dict, list)):
        text = json.dumps(_mask(value), ensure_ascii=False, separators=(",", ":"))
    for pattern, replacement in _SCRUBBERS:
        text = pattern.sub(replacement, text)
    return text


def body_excerpt(text: str, *, limit: int = EXCERPT_LIMIT, redact: Callable[[str], str] | None = None) -> str:
    """A short, single-line, scrubbed excerpt of a body, for an error (HTML tags dropped, control
    characters escaped).

    :param redact: removes the caller's known secret values; applied before the shape rules (which may
        re-encode the body), after them, and on the final line, always before the cut.
    """
    known = redact or _as_is
    text = scrub(known(text))
    if text.lstrip().startswith("<"):
        text = _TAG.sub(" ", text)
    text = known(printable(_SPACE.sub(" ", known(text)).strip()))
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _as_is(text: str) -> str:
    return text


def _status_label(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return {
            495: "495 SSL Certificate Error",
            496: "496 SSL Certificate Required",
            SITE_OVERLOADED: "529 Site is overloaded",
        }.get(status, str(status))


def _attempts(status: int, retries: int) -> str:
    # Say what really happened: how many times the request was sent, or that it was sent once.
    if retries:
        return f" after {retries + 1} attempts"
    if status == 429 or (500 <= status < 600 and status not in (495, 496)):
        return " (sent once, not retried)"
    return ""


def error_for_status(
    status: int,
    text: str,
    *,
    method: str,
    path: str,
    retry_after: float | None = None,
    bearer_sent: bool = False,
    retries: int = 0,
    token_renewed: bool = False,
    redact: Callable[[str], str] | None = None,
) -> ApiError | None:
    """The error for an answer of the bank, or None for a 2xx.

    :param status: the HTTP status.
    :param text: the body as text (see :func:`decode_body`).
    :param method: the HTTP method.
    :param path: the path called (a query string is dropped).
    :param retry_after: the bank's ``Retry-After`` in seconds, if any.
    :param bearer_sent: whether the request carried a Bearer token.
    :param retries: how many times the call was retried before this answer (the message says how many
        attempts were made, or that a 429/5xx was not retried).
    :param token_renewed: whether the Bearer token was a fresh one fetched after a first 401.
    :param redact: removes the caller's known secret values from the excerpt (see :func:`body_excerpt`).
    """
    if 200 <= status < 300:
        return None
    method = method.upper()
    path = path.split("?", 1)[0]
    phrase = find_bank_phrase(text)
    excerpt = body_excerpt(text, redact=redact)
    after = _attempts(status, retries)
    fields: dict[str, Any] = {
        "status_code": status,
        "method": method,
        "path": path,
        "body_excerpt": excerpt,
        "bank_reason": phrase,
    }

    def message(label: str, *, with_excerpt: bool) -> str:
        detail = f": {excerpt}" if with_excerpt and excerpt else "."
        return f"{method} {path} answered {label}{after}{detail}"

    if status == 429:
        return RateLimitedError(
            message(_status_label(status), with_excerpt=False),
            retry_after=retry_after,
            hint=HINT_RATE_LIMITED,
            **fields,
        )
    if 500 <= status < 600 and status not in (495, 496):
        return ServerError(
            message(_status_label(status), with_excerpt=True), hint=HINT_SERVER_ERROR, **fields
        )
    label = f"{status} {phrase}" if phrase else _status_label(status)
    if phrase == INVALID_CLIENT_CERTIFICATE:
        return InvalidClientCertificateError(
            message(label, with_excerpt=False), hint=HINT_INVALID_CLIENT_CERTIFICATE, **fields
        )
    refusal = gateway_certificate_refusal(status, text) if phrase is None or status in (495, 496) else None
    if refusal is not None:
        what, hint = refusal
        detail = f": {excerpt}" if excerpt else ""
        return InvalidClientCertificateError(
            f"{method} {path} answered {label}: {what}{detail}", hint=hint, **fields
        )
    if phrase == INVALID_CREDENTIALS:
        return InvalidCredentialsError(
            message(label, with_excerpt=False), hint=HINT_INVALID_CREDENTIALS, **fields
        )
    if phrase == FORBIDDEN or status == 403:
        return ForbiddenError(message(label, with_excerpt=phrase is None), hint=HINT_FORBIDDEN, **fields)
    hint = {
        401: (HINT_FRESH_TOKEN_REFUSED if token_renewed else HINT_TOKEN_REFUSED)
        if bearer_sent
        else HINT_UNAUTHENTICATED,
        404: HINT_NOT_FOUND,
    }.get(status, "")
    return ApiError(message(label, with_excerpt=True), hint=hint, **fields)


# -- on a requests.Response ----------------------------------------------------------------------


def _retries_of(response: requests.Response) -> int:
    retry = getattr(response.raw, "retries", None)
    return len(getattr(retry, "history", ()) or ())


def raise_for_bank_status(
    response: requests.Response,
    *,
    method: str,
    path: str,
    token_renewed: bool = False,
    redact: Callable[[str], str] | None = None,
) -> None:
    """Raise the error-tree error for a non-2xx answer; return quietly for a 2xx.

    :param response: the bank's answer.
    :param method: the HTTP method (for the message).
    :param path: the path called, relative to the Base URL (for the message).
    :param token_renewed: whether the call carried a fresh token fetched after a first 401.
    :param redact: removes the caller's known secret values from the excerpt.
    :raises ApiError: one of its subclasses where the bank's phrase or the status says which.
    """
    if 200 <= response.status_code < 300:
        return
    authorization = response.request.headers.get("Authorization", "") if response.request else ""
    error = error_for_status(
        response.status_code,
        decode_body(response.content),
        method=method,
        path=path,
        retry_after=parse_retry_after(
            response.headers.get("Retry-After"), now=time.time(), date=response.headers.get("Date")
        ),
        bearer_sent=str(authorization).lower().startswith("bearer "),
        retries=_retries_of(response),
        token_renewed=token_renewed,
        redact=redact,
    )
    if error is not None:
        raise error


def json_body(
    response: requests.Response, *, method: str, path: str, redact: Callable[[str], str] | None = None
) -> Any:
    """The JSON body of a 2xx answer, its numbers exact (``documents.loads``); a body that is not JSON is an
    :class:`ApiError`, not a JSONDecodeError.

    :param response: a 2xx answer (call :func:`raise_for_bank_status` first).
    :param method: the HTTP method (for the message).
    :param path: the path called (for the message).
    :param redact: removes the caller's known secret values from the excerpt.
    """
    try:
        return loads(response.content)
    except (ValueError, RecursionError) as exc:
        path = path.split("?", 1)[0]
        content_type = printable(response.headers.get("Content-Type") or "none")
        excerpt = body_excerpt(decode_body(response.content), redact=redact)
        raise ApiError(
            f"{method.upper()} {path} answered {response.status_code} with a body that is not JSON "
            f"(Content-Type {content_type}): {excerpt or 'empty body'}",
            status_code=response.status_code,
            method=method.upper(),
            path=path,
            body_excerpt=excerpt,
            hint=HINT_NOT_JSON,
        ) from exc

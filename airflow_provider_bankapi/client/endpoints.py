r"""The Base URL, and where an endpoint resolves under it: the one rule every entry point asks.

The client secret, tokens and the client certificate are for the Base URL's origin and path prefix
only, so an endpoint is a path *relative to the Base URL* and nothing else. It is normalised the way
a lenient server or gateway might read it, and the normalised form is what is sent, so what is
checked here is what the bank sees:

- percent-encoded unreserved characters are decoded (RFC 3986, 6.2.2.2: ``%2e`` is ``.``);
- ``\``, ``%5c`` and ``%2f`` count as ``/`` (servers and gateways that treat them as separators
  exist), ``//`` collapses, and ``.``/``..`` segments are removed (RFC 3986, 5.2.4);
- ``..`` above the Base URL's path, ``?``, ``#``, ``;``, ``://`` and control characters are refused,
  before any request;
- a protected call onto the token endpoint is refused: its answer is a token, which must never
  reach XCom or a file;
- an absolute URL (a raw Session's, a page's next link) counts only under the Base URL's origin (scheme,
  host, port) and path prefix, without user info.

An account id goes into a path as exactly one segment: :func:`checked_account_id` refuses, before any
request, an id that any reading of it (percent-decoded once, twice...) turns into a separator, a dot
segment or a control character, so the id is encoded once and nothing on the way re-interprets it.

Pure: no I/O, standard library only.
"""

from __future__ import annotations

import re
import string
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

from airflow_provider_bankapi.errors import (
    HINT_ACCOUNT_ID,
    HINT_ENDPOINT,
    ConfigurationError,
    NextLinkRefusedError,
    printable,
)

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_SEPARATOR = re.compile(r"%2[fF]|%5[cC]|\\")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def endpoint_url(base_url: str, endpoint: str, *, token_endpoint: str | None = None) -> str:
    """The absolute URL of ``endpoint`` under ``base_url``, or a ConfigurationError naming ``endpoint``.

    :param base_url: the connection's Base URL (already validated: https, no query or fragment).
    :param endpoint: the path relative to the Base URL, e.g. ``/accounts/123/balance``.
    :param token_endpoint: for a protected call, the token path (normalised, as the settings keep it), which
        ``endpoint`` must not resolve to.
    """
    path = normalise_endpoint(endpoint)
    if token_endpoint is not None and _resource(path) == _resource(token_endpoint):
        raise ConfigurationError(
            f"The endpoint {_shown(endpoint)} resolves to the token endpoint. The token endpoint is not a "
            "resource: its answer is a token, which must never reach XCom or a file. Tokens are fetched "
            "and cached by the hook itself.",
            field="endpoint",
            hint=HINT_ENDPOINT,
        )
    return base_url.rstrip("/") + path


def path_under_base(base_url: str, url: str) -> str | None:
    """The path of the absolute ``url`` relative to the Base URL's path (``/accounts/1``), or None when
    ``url`` is not under the Base URL's origin and path prefix or holds user info (``user@``).
    """
    origin, path = _origin_and_path(url)
    base_origin, base_path = _origin_and_path(base_url)
    prefix = base_path.rstrip("/")
    if origin != base_origin or urlsplit(url).username is not None:
        return None
    if not (path == prefix or path.startswith(prefix + "/")):
        return None
    return path[len(prefix) :]


def next_link_endpoint(
    base_url: str, link: str, *, token_endpoint: str | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """A page's next link as ``(endpoint, query parameters)`` under the Base URL, or a refusal.

    The link (absolute, or relative: resolved against the Base URL as RFC 3986, 5.2 says) is followed
    only when it stays under the Base URL's origin and path prefix: the token and the client certificate
    are for the bank's API alone.

    :raises NextLinkRefusedError: the link leaves the Base URL; the error names its host, never the
        whole link (its query could hold a token).
    """
    absolute = urljoin(base_url.rstrip("/") + "/", str(link).strip())
    path = path_under_base(base_url, absolute)
    if path is None:
        host = _host_of(absolute)
        raise NextLinkRefusedError(
            f"A page's next link points to {host}, outside the connection's Base URL: not followed, so the "
            "token and the client certificate only go to the bank's API.",
            link_host=host,
            hint="Check the connection's Base URL (host, port and path prefix), or ask the bank why its "
            "links point elsewhere.",
        )
    endpoint_url(base_url, path, token_endpoint=token_endpoint)  # the endpoint rule, token endpoint included
    return path, parse_qsl(urlsplit(absolute).query, keep_blank_values=True)


def normalise_endpoint(endpoint: str, *, field: str = "endpoint") -> str:
    """``endpoint`` as an absolute path relative to the Base URL's path: ``/a/b`` (or ``/`` for the base).

    :param endpoint: what the caller gave.
    :param field: the field named by the error (``endpoint``, or ``auth_endpoint`` for the token path).
    :raises ConfigurationError: the endpoint is not a plain path, or it resolves above the Base URL's path.
    """
    if not isinstance(endpoint, str):
        raise ConfigurationError(f"The {field} must be a path (text).", field=field, hint=HINT_ENDPOINT)
    text = endpoint.strip()
    refusal = _refusal(text)
    if refusal:
        raise ConfigurationError(f"The {field} {_shown(text)} {refusal}.", field=field, hint=HINT_ENDPOINT)
    text = _ESCAPE.sub(_decode_unreserved, _SEPARATOR.sub("/", text))
    segments: list[str] = []
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise ConfigurationError(
                    f"The {field} {_shown(endpoint)} resolves outside the Base URL's path: the token and the "
                    "client certificate are only sent to the bank's API.",
                    field=field,
                    hint=HINT_ENDPOINT,
                )
            segments.pop()
            continue
        segments.append(segment)
    trailing = bool(segments) and (text.endswith("/") or text.rsplit("/", 1)[-1] in (".", ".."))
    return "/" + "/".join(segments) + ("/" if trailing else "")


def checked_account_id(account_id: str | int, *, field: str = "account_id") -> str:
    r"""``account_id`` as text, or a ConfigurationError naming it when it cannot be one path segment.

    Refused: an empty id; a ``/`` or ``\`` (percent-encoded any number of times: gateways that decode twice
    exist); an id that is ``.`` or ``..`` once decoded; a control or other non-printable character.
    The bank's ids are plain (digits), so refusing says at once what is wrong, where silently encoding
    would only move the surprise to the bank's 404.

    :param account_id: the id as given (a number is taken as its text).
    :param field: the field named by the error (``account_id``, or ``account_ids`` for a list).
    """
    text = str(account_id)
    decoded = text
    while (once := unquote(decoded)) != decoded:  # every reading a server or gateway might make
        decoded = once
    problem = ""
    if not text.strip():
        problem = "is empty"
    elif not (text.isprintable() and decoded.isprintable()):
        problem = "holds control characters (a newline, NUL, ESC...)"
    elif "/" in decoded or "\\" in decoded:
        problem = "holds a path separator ('/' or '\\', also percent-encoded)"
    elif decoded in (".", ".."):
        problem = "is a dot segment ('.' or '..', also percent-encoded)"
    if problem:
        raise ConfigurationError(
            f"The account id '{printable(text)}' {problem}.",
            field=field,
            hint=HINT_ACCOUNT_ID,
        )
    return text


def _refusal(text: str) -> str:
    if "://" in text:
        return "is a full URL; the token and the client certificate go to the Base URL only"
    if "?" in text:
        return "holds a query string ('?')"
    if "#" in text:
        return "holds a fragment ('#')"
    if ";" in text:
        return "holds path parameters (';')"
    if _CONTROL.search(text):
        return "holds control characters"
    return ""


def _decode_unreserved(match: re.Match[str]) -> str:
    character = chr(int(match.group(1), 16))
    return character if character in _UNRESERVED else match.group(0)


def _resource(path: str) -> str:
    # Gateways differ on case and on a trailing slash: the token endpoint is refused in all its spellings.
    return path.rstrip("/").lower()


def _shown(endpoint: str) -> str:
    # An endpoint is not secret, but it may be long or hold control characters: show a short repr.
    return repr(endpoint[:80] + ("…" if len(endpoint) > 80 else ""))


def _origin_and_path(url: str) -> tuple[tuple[str, str, int], str]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower(), -1)
    except ValueError:
        port = -1
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port), parts.path


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or 'an unreadable host'}{f':{port}' if port else ''}"

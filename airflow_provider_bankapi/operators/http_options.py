"""What a task may add to a call (headers) and how it reads the answer (JSON, text or bytes).

Pure: no Airflow, no I/O. The operator checks a task's headers before a call and decodes the answer
as the task asks.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_bankapi.errors import ApiError, ConfigurationError

if TYPE_CHECKING:
    import requests

#: ``json``: the decoded JSON; ``text``: the body as a string; ``bytes``: the body as it came.
RESPONSE_TYPES = ("json", "text", "bytes")

# Headers a task may not set: the provider's own authentication (the Bearer token, which only it
# attaches), what would send the call or its credentials elsewhere or as someone else (Host, Cookie,
# a proxy's credentials), and what requests and urllib3 compute from the body and the connection.
REFUSED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "host",
        "cookie",
        "content-length",
        "transfer-encoding",
        "connection",
    }
)
_FORBIDDEN_IN_VALUES = ("\r", "\n", "\0")
# A field name is a token (RFC 9110 5.1 and 5.6.2): visible ASCII but separators, nothing else. Checked
# before the refused list, so that "Authorization\x00" cannot pass as another name and be sent.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def checked_headers(headers: Any) -> dict[str, str]:
    """The task's extra headers, or a ConfigurationError naming the faulty header (never its value).

    :param headers: a mapping of header name to value, both strings; None for none.
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigurationError(
            f"headers must be a mapping of header name to value; got {type(headers).__name__}.",
            field="headers",
        )
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name.strip()):
            raise ConfigurationError(
                f"header name {name!r} is not a valid header name: RFC 9110 allows only letters, digits "
                "and !#$%&'*+-.^_`|~ (no spaces, colons, control or non-ASCII characters).",
                field="headers",
            )
        if name.strip().lower() in REFUSED_HEADERS:
            raise ConfigurationError(
                f"header {name.strip()!r} cannot be set by a task: the provider sets it itself or it would "
                "override the provider's authentication.",
                field="headers",
                hint="Remove it from headers; the hook attaches the Bearer token on every call by itself.",
            )
        if not isinstance(value, str) or any(char in value for char in _FORBIDDEN_IN_VALUES):
            raise ConfigurationError(
                f"the value of header {name.strip()!r} must be text on one line (no CR, LF or NUL).",
                field="headers",
            )
        checked[name.strip()] = value
    return checked


def check_header_names(headers: Any) -> None:
    """The names of a mapping of headers, when the DAG is parsed: Airflow renders the values of a templated
    mapping, never its keys, so a refused name fails the DAG file before any run.
    """
    if isinstance(headers, Mapping):
        checked_headers(dict.fromkeys(headers, ""))


def checked_response_type(value: str, *, paginated: bool, with_headers: bool, bytes_to_xcom: bool) -> str:
    """The task's ``response_type``, or a ConfigurationError when its other arguments cannot go with it.

    :param paginated: the task pages through the answers with a pagination function.
    :param with_headers: the task sets headers.
    :param bytes_to_xcom: the task would return the body itself to XCom (no output_path, no filter).
    """
    if value not in RESPONSE_TYPES:
        raise ConfigurationError(
            f"response_type must be one of {', '.join(RESPONSE_TYPES)}; got {value!r}.", field="response_type"
        )
    if paginated and value != "json":
        raise ConfigurationError(
            "pagination_function pages through JSON answers only.", field="response_type"
        )
    if paginated and with_headers:
        raise ConfigurationError(
            "headers are not sent with pagination_function: each page is a plain GET.", field="headers"
        )
    if value == "bytes" and bytes_to_xcom:
        raise ConfigurationError(
            "response_type='bytes' returns bytes, which XCom cannot hold.",
            field="response_type",
            hint="Give output_path to write the body as it came, a response_filter that returns "
            "something XCom holds, or do_xcom_push=False.",
        )
    return value


def charset(content_type: str) -> str:
    """The ``charset`` of a Content-Type, or UTF-8 when it names none or one Python does not know."""
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip("\"'")
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


def text_body(response: requests.Response, *, method: str, path: str) -> str:
    """The body as text, in the charset its Content-Type names (UTF-8 when none)."""
    content_type = response.headers.get("Content-Type") or ""
    encoding = charset(content_type)
    try:
        return response.content.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ApiError(
            f"{method} {path} answered {response.status_code} with a body that is not {encoding} text "
            f"(Content-Type {content_type or 'none'}).",
            status_code=response.status_code,
            method=method,
            path=path,
            hint="Ask for response_type='bytes' to get the body as it came.",
        ) from exc

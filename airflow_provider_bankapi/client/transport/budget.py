"""A byte budget for every answer, on the wire and once inflated, counted while the body is read.

requests asks for gzip and deflate on every call and inflates what comes back: about a megabyte of
gzip became a gigabyte balance document, and a cap checked on ``response.content`` comes after the
memory is spent. So the adapter hands every answer's body to :class:`BudgetedBody`, through which
requests (``response.content``, ``iter_content``) and raw callers (``response.raw.read``) read it.
It counts the bytes pulled from the connection and the bytes inflated, and past the limit stops
reading, closes the connection and raises :class:`ResponseTooLargeError`, naming the call and the
limit. urllib3 inflates incrementally (``read(amt)`` inflates at most ``amt`` bytes at a time), so one
call holds at most its limit plus one chunk, whatever the ratio of the compression.

An answer whose ``Content-Length`` is already past the limit is refused before its body is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_bankapi.client.fields import amount
from airflow_provider_bankapi.errors import (
    HINT_RESPONSE_TOO_LARGE,
    HINT_TOKEN_ANSWER_TOO_LARGE,
    ResponseTooLargeError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from urllib3 import BaseHTTPResponse

#: Bytes asked of urllib3 at a time when the caller gives no size: also the most inflated at once.
READ_CHUNK = 64 * 1024


def too_large(
    *, method: str, path: str, status: int, limit: int, setting: str | None, inflated: bool
) -> ResponseTooLargeError:
    """The error for an answer past ``limit`` (``setting`` None: the fixed limit of token answers)."""
    form = " once inflated" if inflated else ""
    whose = f"the {setting} limit" if setting else "the limit of token answers"
    return ResponseTooLargeError(
        f"{method} {path} answered {status} with a body larger than {amount(limit)}{form} "
        f"({whose}): refused while reading it.",
        limit=limit,
        setting=setting,
        status_code=status,
        method=method,
        path=path,
        hint=HINT_RESPONSE_TOO_LARGE if setting else HINT_TOKEN_ANSWER_TOO_LARGE,
    )


class BudgetedBody:
    """urllib3's response for one answer, whose body reads stop at ``limit`` bytes.

    :param raw: the answer as urllib3 gives it (not yet read).
    :param limit: the largest body, in bytes, on the wire and once inflated.
    :param refuse: makes the error to raise, given whether the body was compressed.
    """

    def __init__(self, raw: BaseHTTPResponse, limit: int, refuse: Any) -> None:
        self._raw = raw
        self._limit = limit
        self._refuse = refuse
        self._delivered = 0

    def __getattr__(self, name: str) -> Any:
        # Everything but reading the body is urllib3's: headers, release_conn, retries, close...
        return getattr(self._raw, name)

    def stream(self, amt: int | None = READ_CHUNK, decode_content: bool | None = None) -> Iterator[bytes]:
        """Chunks of the body, as urllib3's ``stream`` gives them, never past the limit."""
        for chunk in self._raw.stream(amt or READ_CHUNK, decode_content=decode_content):
            self._count(len(chunk))
            yield chunk

    def read(self, amt: int | None = None, decode_content: bool | None = None, **kwargs: Any) -> bytes:
        """urllib3's ``read``; without ``amt`` the whole body, read a chunk at a time under the limit."""
        if amt is None or amt < 0:
            return b"".join(self.stream(READ_CHUNK, decode_content))
        data = self._raw.read(amt, decode_content=decode_content)
        self._count(len(data))
        return data

    def _count(self, size: int) -> None:
        self._delivered += size
        if self._delivered > self._limit or self._raw.tell() > self._limit:
            self.refuse()

    def refuse(self) -> None:
        """Stop: drop the connection (the rest of the body is never read) and raise the error."""
        inflated = (self._raw.headers.get("Content-Encoding") or "identity").strip().lower() != "identity"
        self._raw.close()
        self._raw.release_conn()
        raise self._refuse(inflated=inflated)


def declared_length(raw: BaseHTTPResponse) -> int | None:
    """The answer's ``Content-Length`` as a number, or None when absent or unreadable."""
    value = (raw.headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() and len(value) < 20 else None

"""The secret values one client knows, removed from any text the bank sent back before it is shown.

The shape rules of the excerpts (a ``"client_secret": ...`` member, ``access_token=...``, a Bearer value)
only catch a secret where it sits in a shape they know. A token endpoint that echoes the request inside a
string, a field/value list, YAML, XML or a repr keeps it out of their reach; the value itself is always
recognisable. So the client holds its actual secrets (the client_secret, the key and PKCS#12 passwords,
the proxy's password, every token it handed out) and every excerpt and message made from an answer goes
through :class:`Redactor` as well, on top of the shape rules.
"""

from __future__ import annotations

import html
import json
import re
import threading
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

from airflow_provider_bankapi.errors import printable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

REDACTED = "***"
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _spellings(value: str) -> set[str]:
    # The ways an echo may write a value back: as it is, URL-encoded (form or path), JSON-escaped
    # (ASCII or not), XML/HTML-escaped, as a Python repr writes a string, and as an excerpt escapes it.
    spellings = {
        printable(value),
        value,
        quote(value),
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),
        html.escape(value, quote=False),
        repr(value)[1:-1],
    }
    # Percent-escapes in lower case too (RFC 3986 makes them equivalent); matching the whole text without
    # regard to case would cost thirty times as much.
    return spellings | {_PERCENT_ESCAPE.sub(lambda escape: escape.group().lower(), s) for s in spellings}


class Redactor:
    """Replaces every known secret value, in each of its usual spellings and each spelling of those, by
    ``***``.

    Values may be added at any time (each new token) from any thread; a call sees the values added
    before it.

    :param values: the secrets known from the start; empty and None values are ignored.
    :param reveal: called with each value added later (each token), once, so that a host (Airflow's secret
        masker) hides it from logs too; the values known from the start are the host's own already.
    """

    def __init__(
        self, values: Iterable[str | bytes | None] = (), *, reveal: Callable[[str], None] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._reveal: Callable[[str], None] | None = None
        for value in values:
            self.add(value)
        self._reveal = reveal

    def add(self, value: str | bytes | None) -> None:
        """Know one more secret value (bytes are read as UTF-8)."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not value or value in self._values:
            return
        with self._lock:
            values = self._values | {value}
            # Two levels: an echo of an echo (JSON inside a JSON string, a URL-encoded JSON body).
            once = {spelling for v in values for spelling in _spellings(v)}
            twice = {spelling for v in once for spelling in _spellings(v)}
            spellings = sorted(twice, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, spellings)))
            self._values = values
        if self._reveal is not None:
            self._reveal(value)

    def __call__(self, text: str) -> str:
        """``text`` with every known secret value replaced by ``***``."""
        pattern = self._pattern
        return text if pattern is None or not text else pattern.sub(REDACTED, text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values)"  # never the values

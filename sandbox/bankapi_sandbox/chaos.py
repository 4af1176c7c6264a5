"""More ways for the sandbox bank to misbehave: a seeded mix of faults, canned bad answers, a log.

Kept apart from the basic fault kinds of state.py (``429``, ``503``, ``drop``, ``hang``, ``trickle``)
so that a table here is the one place to add a kind. Everything in this module is pure: the server asks it
what to send and records what it sent.

The mix decides each request's fault from ``(seed, path, how many times that path was asked
before)`` alone, with a ``random.Random`` seeded by those three: the same seed faults the same
requests whatever order the client's threads send them in, so a failing run can be replayed.
"""

from __future__ import annotations

import email.utils
import fnmatch
import functools
import random
import re
import struct
import zlib
from dataclasses import dataclass

#: How each canned kind answers: (status, OAuth-style code, the phrase the bank would use).
CANNED: dict[str, tuple[int, str, str]] = {
    "429-date": (429, "too_many_requests", "Too Many Requests"),  # Retry-After as an HTTP date
    "502": (502, "bad_gateway", "Bad Gateway"),
    "504": (504, "gateway_timeout", "Gateway Timeout"),
    # No standard status: what an Open Finance gateway sends when the site is overloaded (as 503).
    "529": (529, "site_overloaded", "Site is overloaded"),
    "404": (404, "not_found", "Not Found"),
    "not-json": (200, "", ""),  # a 200 whose body is an HTML page, as a misrouted proxy sends
    # About 1 MB of gzip that inflates to 1 GiB, as a 200 and as an error body.
    "gzip-bomb": (200, "", ""),
    "gzip-bomb-500": (500, "", ""),
}
#: The token is revoked just before this request is served as usual: it gets ``401 invalid_token``.
REVOKE = "revoke"
EXTRA_FAULT_KINDS = (*CANNED, REVOKE)
NOT_JSON_BODY = b"<html><body><h1>Service temporarily moved</h1></body></html>"
#: What the gzip-bomb kinds inflate to, in bytes.
GZIP_BOMB_INFLATED = 1024**3
#: The most requests the log keeps (the oldest go first): a benchmark's millions must not pile up.
REQUEST_LOG_LIMIT = 200_000
_ACCOUNT = re.compile(r"/accounts/([^/?]+)")


#: The status each basic kind answers with (None: no answer at all).
_BASIC_STATUS: dict[str, int | None] = {"429": 429, "503": 503, "drop": None, "hang": None, "trickle": 200}


def fault_status(kind: str) -> int | None:
    """The status a fault kind answers with; None for a dropped or hanging request."""
    return CANNED[kind][0] if kind in CANNED else _BASIC_STATUS[kind]


@dataclass(frozen=True)
class CannedAnswer:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def canned_answer(kind: str, retry_after: int | None, now: float) -> CannedAnswer:
    """The answer of a kind of :data:`CANNED`; ``now`` is the bank's clock, for an HTTP-date Retry-After."""
    status, code, phrase = CANNED[kind]
    if kind == "not-json":
        return CannedAnswer(status, NOT_JSON_BODY, "text/html")
    if kind.startswith("gzip-bomb"):
        bomb = gzip_bomb(GZIP_BOMB_INFLATED)
        return CannedAnswer(status, bomb, "application/json", (("Content-Encoding", "gzip"),))
    headers: tuple[tuple[str, str], ...] = ()
    if kind == "429-date":
        # RFC 9110 section 10.2.3: an IMF-fixdate, in the bank's own clock.
        when = email.utils.formatdate(now + (retry_after if retry_after is not None else 1), usegmt=True)
        headers = (("Retry-After", when),)
    elif kind == "529" and retry_after is not None:
        headers = (("Retry-After", str(retry_after)),)  # in seconds, as the 429 and 503 kinds send it
    body = f'{{"error": "{code}", "message": "{phrase}", "status": {status}, "error_description": '
    body += '"injected fault"}'
    return CannedAnswer(status, body.encode(), "application/json", headers)


@functools.cache
def gzip_bomb(inflated: int) -> bytes:
    """One gzip member (RFC 1952) about a thousandth of ``inflated`` long that inflates to ``inflated`` zero
    bytes (a whole number of MiB). Built from one compressed MiB repeated: after a full flush, deflate
    forgets its history, so the same input gives the same bytes (a fraction of a second, not the ten
    seconds of compressing the gigabyte).
    """
    piece = bytes(1024 * 1024)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(piece) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(inflated // len(piece)):
        crc = zlib.crc32(piece, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # gzip, deflate, no name, no time, Unix
    trailer = struct.pack("<II", crc, inflated & 0xFFFFFFFF)
    return header + block * (inflated // len(piece)) + deflate.flush(zlib.Z_FINISH) + trailer


@dataclass(frozen=True)
class FaultMix:
    """A share of requests faulted at random, replayably.

    :param seed: the seed; printed by whoever sets the mix so that a run can be replayed.
    :param rate: the share of matching requests to fault, 0 to 1.
    :param kinds: the kinds drawn from, uniformly (any basic or extra kind).
    :param paths: an ``fnmatch`` pattern of the paths (relative to the base URL) the mix applies to.
    :param retry_after: the Retry-After, in seconds, of the 429 kinds.
    """

    seed: int
    rate: float
    kinds: tuple[str, ...]
    paths: str = "*"
    retry_after: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, not {self.seed!r}")
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not 0 <= self.rate <= 1:
            raise ValueError(f"rate must be a number from 0 to 1, not {self.rate!r}")
        if not self.kinds:
            raise ValueError("kinds must name at least one fault kind")

    def applies_to(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.paths)

    def pick(self, path: str, occurrence: int) -> str | None:
        """The fault kind for the ``occurrence``-th request (from 0) to ``path``, or None."""
        draw = random.Random(f"{self.seed}:{path}:{occurrence}")
        if draw.random() >= self.rate:
            return None
        return draw.choice(self.kinds)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the bank saw it: no header but the interaction id, so never a token.

    :param status: the status answered, None when the connection was dropped or left hanging.
    :param fault: the fault kind served, None for a normal answer.
    :param interaction_id: the ``x-fapi-interaction-id`` the client sent, None when it sent none.
    """

    method: str
    path: str
    account: str | None
    status: int | None
    fault: str | None
    interaction_id: str | None = None

    @classmethod
    def of(
        cls, method: str, path: str, status: int | None, fault: str | None, interaction_id: str | None = None
    ) -> RequestRecord:
        match = _ACCOUNT.search(path)
        account = match.group(1) if match else None
        return cls(method, path.split("?", 1)[0], account, status, fault, interaction_id)

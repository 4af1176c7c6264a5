"""Deterministic fake banking data: the same account id always gives the same figures.

Only the balance is part of the bank's documented contract. The account list, the paginated
transactions and the CSV statement are **sandbox illustrations** (the bank documents no such
resources): they exist so that the provider's generic call, its pagination and its answers that are
not JSON can be shown and tested. Their bodies (or, for the CSV, a header) say so.

So are the resources shaped like an Open Finance Brasil bank's: transactions in ``{"data": [...],
"links": {"next"}, "meta": {"totalPages"}}`` pages numbered by ``page``/``page-size``, the same pages
with an RFC 8288 ``Link`` header instead of body links, and balances whose amounts are JSON numbers
with more digits than a float holds (``1000.0400``, ``12345678901234567.89``).
"""

from __future__ import annotations

import base64
import csv
import datetime
import hashlib
import io
import math
import re
from decimal import Decimal
from typing import Any

ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ILLUSTRATION_NOTE = (
    "Sandbox illustration: not part of the bank's documented contract (only /auth/token-v2 and "
    "/accounts/{id}/balance are documented)."
)
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# A fixed "today", so that transaction dates never change between runs.
_EPOCH = datetime.date(2026, 1, 31)
_CREDITS = ("PIX received", "TED received", "Refund")
_DEBITS = ("PIX sent", "Card purchase", "Boleto payment", "Fee")


class BadRequest(ValueError):
    """A query parameter the sandbox cannot honour (the message is safe to send back)."""


def _number(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _pick(choices: tuple[str, ...], *parts: object) -> str:
    return choices[_number(*parts) % len(choices)]


def balance(account_id: str) -> dict[str, Any]:
    """``GET /accounts/{id}/balance`` (documented by the bank; the body's fields are the sandbox's)."""
    available = _number("available", account_id) % 10_000_000  # up to 99,999.99
    blocked = _number("blocked", account_id) % 50_000
    return {
        "account_id": account_id,
        "available": _money(available),
        "current": _money(available + blocked),
        "blocked": _money(blocked),
        "currency": "BRL",
        "as_of": f"{_EPOCH.isoformat()}T12:00:00Z",
    }


def accounts(client_id: str) -> dict[str, Any]:
    """``GET /accounts``: the credential's accounts (an illustration). ``123`` is the bank's example."""
    others = [str(100_000 + _number("account", client_id, n) % 900_000) for n in range(2)]
    items = [
        {"account_id": account_id, "type": kind, "currency": "BRL"}
        for account_id, kind in zip(["123", *others], ["checking", "savings", "payments"], strict=True)
    ]
    return {"items": items, "next_cursor": None, "sandbox_illustration": ILLUSTRATION_NOTE}


def _transaction(account_id: str, index: int) -> dict[str, Any]:
    amount = _number("amount", account_id, index) % 500_000 + 1
    credit = _number("direction", account_id, index) % 2 == 0
    return {
        "transaction_id": f"{account_id}-{index:05d}",
        "date": (_EPOCH - datetime.timedelta(days=index // 3)).isoformat(),
        "type": "credit" if credit else "debit",
        "amount": _money(amount if credit else -amount),
        "description": _pick(_CREDITS if credit else _DEBITS, "description", account_id, index),
    }


def transaction_count(account_id: str) -> int:
    return 25 + _number("count", account_id) % 50


def encode_cursor(account_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{account_id}:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(account_id: str, cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        owner, offset = text.rsplit(":", 1)
        value = int(offset)
    except ValueError as exc:
        raise BadRequest("cursor is not one this sandbox returned") from exc
    if owner != account_id or value < 0:
        raise BadRequest("cursor is not one this sandbox returned for this account")
    return value


def transactions(account_id: str, cursor: str | None, limit: str | None) -> dict[str, Any]:
    """``GET /accounts/{id}/transactions?limit=&cursor=`` newest first, cursor-paginated (an illustration).

    :raises BadRequest: for a limit outside 1..100 or a cursor this sandbox did not hand out.
    """
    try:
        size = DEFAULT_PAGE_SIZE if limit in (None, "") else int(limit)
    except ValueError as exc:
        raise BadRequest("limit must be a whole number") from exc
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    start = _decode_cursor(account_id, cursor) if cursor else 0
    total = transaction_count(account_id)
    end = min(start + size, total)
    return {
        "items": [_transaction(account_id, i) for i in range(start, end)],
        "next_cursor": encode_cursor(account_id, end) if end < total else None,
        "sandbox_illustration": ILLUSTRATION_NOTE,
    }


STATEMENT_COLUMNS = ("date", "transaction_id", "type", "amount", "description")


def statement_csv(account_id: str) -> str:
    """``GET /accounts/{id}/statement.csv``: every transaction, newest first, as CSV with a header row
    (an illustration of an answer that is not JSON).
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=STATEMENT_COLUMNS)
    writer.writeheader()
    for index in range(transaction_count(account_id)):
        writer.writerow(_transaction(account_id, index))
    return buffer.getvalue()


#: The Open Finance illustrations' balances: decimals a float changes (to 1000.04, 1.2345678901234568e16).
OPEN_FINANCE_AVAILABLE = Decimal("1000.0400")
OPEN_FINANCE_INVESTED = Decimal("12345678901234567.89")
OPEN_FINANCE_PAGE_SIZE = 25
_DATE_TIME = "T12:00:00.000Z"


def open_finance_balances(account_id: str, self_url: str) -> dict[str, Any]:
    """``GET /open-banking/accounts/{id}/balances``: one balance object in ``data`` (an illustration)."""
    return {
        "data": {
            "accountId": account_id,
            "availableAmount": {"amount": OPEN_FINANCE_AVAILABLE, "currency": "BRL"},
            "automaticallyInvestedAmount": {"amount": OPEN_FINANCE_INVESTED, "currency": "BRL"},
            "updateDateTime": f"{_EPOCH.isoformat()}{_DATE_TIME}",
        },
        "links": {"self": self_url},
        "meta": {"totalRecords": 1, "totalPages": 1, "requestDateTime": f"{_EPOCH.isoformat()}{_DATE_TIME}"},
        "sandbox_illustration": ILLUSTRATION_NOTE,
    }


def _open_finance_transaction(account_id: str, index: int) -> dict[str, Any]:
    plain = _transaction(account_id, index)
    # Four decimals, as some Open Finance amounts carry: a float would drop the trailing zeros.
    amount = Decimal(plain["amount"].lstrip("-")).quantize(Decimal("0.0001"))
    return {
        "transactionId": plain["transaction_id"],
        "creditDebitType": "CREDITO" if plain["type"] == "credit" else "DEBITO",
        "transactionName": plain["description"],
        "transactionAmount": {"amount": amount, "currency": "BRL"},
        "transactionDateTime": f"{plain['date']}{_DATE_TIME}",
    }


def numbered_page(account_id: str, page: str | None, page_size: str | None, self_url: str) -> dict[str, Any]:
    """One page of ``GET /open-banking/accounts/{id}/transactions?page=&page-size=``, numbered from 1, with
    absolute ``links`` (``next`` on every page but the last) and ``meta.totalPages`` (an illustration).

    :raises BadRequest: for a page or a page size that is not a whole number in range.
    """
    try:
        number = 1 if page in (None, "") else int(page)
        size = OPEN_FINANCE_PAGE_SIZE if page_size in (None, "") else int(page_size)
    except ValueError as exc:
        raise BadRequest("page and page-size must be whole numbers") from exc
    if not 1 <= size <= MAX_PAGE_SIZE or number < 1:
        raise BadRequest(f"page must be 1 or more and page-size between 1 and {MAX_PAGE_SIZE}")
    total = transaction_count(account_id)
    pages = max(1, math.ceil(total / size))
    start = (number - 1) * size
    records = [_open_finance_transaction(account_id, i) for i in range(start, min(start + size, total))]

    def link(to: int) -> str:
        return f"{self_url}?page={to}&page-size={size}"

    links = {"self": link(number), "first": link(1), "last": link(pages)}
    if number > 1:
        links["prev"] = link(number - 1)
    if number < pages:
        links["next"] = link(number + 1)
    return {
        "data": records,
        "links": links,
        "meta": {"totalRecords": total, "totalPages": pages, "requestDateTime": f"{_EPOCH}{_DATE_TIME}"},
    }

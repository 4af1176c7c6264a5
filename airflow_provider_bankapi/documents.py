"""The bank's JSON documents read exactly: numbers as ``Decimal``, records found by a dotted path.

Money in JSON is a number with a fixed number of decimals (``1000.0400``) or more digits than a float
holds (``12345678901234567.89``). Python's ``json`` reads both as floats, and then writes ``1000.04`` and
``1.2345678901234568e+16``. Here every number with a fraction or an exponent is read as a
:class:`BankDecimal` (integers stay ``int``, which Python holds exactly at any size), and :func:`dumps`
writes it back with the digits the bank sent. ``NaN`` and ``Infinity`` are not JSON (RFC 8259, 6) and
are refused when reading, so nothing non-finite is ever written.

Pure: standard library only; shared by the client layer and the Airflow layer (which registers
:class:`BankDecimal` for XCom when DAG files are parsed, without loading the client).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The lists a page is split on when no records path is given, in this order.
DEFAULT_RECORD_KEYS = ("items", "data")


class BankDecimal(Decimal):
    """A number as the bank wrote it: a ``Decimal`` that Airflow's XCom stores as its digits.

    Airflow's own XCom serializer turns a ``Decimal`` with a fraction into a float (``1000.0400`` comes
    back as ``1000.04``); Airflow uses an object's own ``serialize``/``deserialize`` before that, so this
    class keeps the text. Arithmetic on it gives a plain ``Decimal``.
    """

    __version__ = 1

    def serialize(self) -> str:
        """The number's text for Airflow's serde (XCom)."""
        return number_text(self)

    @staticmethod
    def deserialize(data: object, version: int) -> BankDecimal:
        """The number back from Airflow's serde."""
        if version > BankDecimal.__version__:
            raise TypeError(f"BankDecimal version {version} is newer than this provider's")
        return BankDecimal(str(data))


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def loads(body: bytes | str) -> Any:
    """Decode a JSON document: fractions and exponents as :class:`BankDecimal`, integers as ``int``.

    :raises ValueError: the body is not JSON (``NaN`` and ``Infinity`` included).
    """
    return json.loads(body, parse_float=BankDecimal, parse_constant=_not_json)


def number_text(number: Decimal) -> str:
    """A finite Decimal as a JSON number with its own digits: ``1000.0400`` stays ``1000.0400``.

    A number read without an exponent keeps its plain form (``str`` would write ``0.0000001`` as
    ``1E-7``); one that needs a positive exponent (``1e309``) is written as ``1E+309``.

    :raises ValueError: for NaN or an infinity, which JSON cannot hold.
    """
    if not number.is_finite():
        raise ValueError(f"{number} cannot be written as a JSON number")
    exponent = number.as_tuple().exponent
    return format(number, "f") if isinstance(exponent, int) and exponent <= 0 else str(number)


def _encode(value: Any) -> Iterator[str]:
    # A small encoder of JSON's own types plus Decimal; json.JSONEncoder cannot write a number's text
    # as it is (its default() may only return something it then encodes itself).
    if isinstance(value, str):
        yield json.dumps(value, ensure_ascii=False)
    elif value is None or isinstance(value, (bool, int, float)):
        yield json.dumps(value, allow_nan=False)
    elif isinstance(value, Decimal):
        yield number_text(value)
    elif isinstance(value, Mapping):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be text, not {type(key).__name__}")
            yield ("," if index else "") + json.dumps(key, ensure_ascii=False) + ":"
            yield from _encode(item)
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _encode(item)
        yield "]"
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """One compact line of JSON (UTF-8 text as it is), every Decimal written with its own digits."""
    return "".join(_encode(value))


def at_path(document: Any, path: str) -> Any:
    """The value at a dotted path of object keys (``"links.next"``), or None when any key is missing."""
    current = document
    for key in path.split("."):
        if not isinstance(current, Mapping) or key not in current:
            return None
        current = current[key]
    return current


def records_of(page: Any, records_path: str | None = None) -> list[Any]:
    """The records of one page.

    With ``records_path`` (``"data"``, ``"result.entries"``): the list found there, or the one object
    there as one record; nothing there is no record. Without it: a page that is a list is its own list
    of records; a page holding ``"items"`` or ``"data"`` is split on it; any other page is one record.
    """
    if records_path is not None:
        found = at_path(page, records_path)
        if found is None:
            return []
        return list(found) if isinstance(found, list) else [found]
    if isinstance(page, list):
        return page
    if isinstance(page, Mapping):
        for key in DEFAULT_RECORD_KEYS:
            found = page.get(key)
            if isinstance(found, list):
                return list(found)
            if key == "data" and isinstance(found, Mapping):
                return [found]
    return [page]

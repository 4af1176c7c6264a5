"""The largest value each connection field may hold, in bytes: one table, asked by every reader.

A connection is read by workers and by the triggerer, whose event loop serves every deferred task
of the deployment; parsing holds the GIL. A cap per field keeps any value, inline or in the file
it names, small enough to be parsed or refused at once. Each limit is far above any legitimate
value (the system's whole CA bundle is about 220 KB).

Errors name the field and both sizes, never the value: it may be key material.
"""

from __future__ import annotations

import json
import os
from types import MappingProxyType

from ..errors import ConfigurationError

KIB = 1024
MIB = 1024 * KIB

#: Per connection field (``host``, ``login`` and ``password`` are the Base URL, the client_id and the
#: client_secret; the others are extras): the largest value, inline or as the content of a file.
FIELD_LIMITS = MappingProxyType(
    {
        "host": 2 * KIB,
        "login": 1 * KIB,
        "password": 4 * KIB,
        "client_cert": 256 * KIB,
        "client_private_key": 64 * KIB,
        "client_private_key_password": 1 * KIB,
        "client_pfx_secret": 256 * KIB,
        "client_pfx_password": 1 * KIB,
        # OpenSSL's trust store takes superlinear time to load: 512 KiB of CA certificates (twice the
        # system's bundle) load in about half a second, 1 MiB in about 1.4 s.
        "ca_cert": 512 * KIB,
    }
)
#: Every other field (timeouts, scopes, the token path, the proxy URL...).
OTHER_FIELD_LIMIT = 4 * KIB


def limit_of(name: str) -> int:
    """The largest value, in bytes, the connection field ``name`` may hold."""
    return FIELD_LIMITS.get(name, OTHER_FIELD_LIMIT)


def size_of(value: object) -> int:
    """A field value's size in bytes: text as UTF-8, a path's own length, JSON for anything else."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        # A character is at least one byte: a value that long is over without encoding it.
        return len(value) if len(value) > MIB else len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, os.PathLike):
        return len(os.fspath(value))
    if isinstance(value, (bool, int, float)) or value is None:
        return 0  # JSON already bounds a number's digits
    return len(json.dumps(value, default=repr))


def check_size(
    name: str, size: int, *, where: str | None = None, error: type[ConfigurationError] = ConfigurationError
) -> None:
    """Refuse a value larger than its field's limit.

    :param name: the connection field.
    :param size: the value's size in bytes (for a file: its size on disk, or what was read of it).
    :param where: how the message refers to the value (default: the field's name).
    :param error: the error class to raise (a subclass of ConfigurationError).
    :raises ConfigurationError: naming the field, the size and the limit; never the value.
    """
    limit = limit_of(name)
    if size <= limit:
        return
    shown, cap = _amount(size), _amount(limit)
    if shown == _amount(limit, exact=False):  # 1.0 MiB against 1 MiB says nothing: give the bytes
        shown, cap = f"{size} bytes", f"{cap} ({limit} bytes)"
    raise error(
        f"{where or name} is {shown}; the limit is {cap}: no {name} is that large.",
        field=name,
        hint=f"Check that {name} holds the right value (or names the right file).",
    )


def amount(size: int) -> str:
    """A size for a message: "16 MiB", "1.5 KiB", "300 bytes"."""
    return _amount(size)


def _amount(size: int, *, exact: bool = True) -> str:
    for unit, factor in (("MiB", MIB), ("KiB", KIB)):
        if size >= factor:
            if exact and size % factor == 0:
                return f"{size // factor} {unit}"
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


__all__ = ["FIELD_LIMITS", "OTHER_FIELD_LIMIT", "amount", "check_size", "limit_of", "size_of"]

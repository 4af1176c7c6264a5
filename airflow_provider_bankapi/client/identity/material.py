"""Reading client-identity inputs: PEM text, base64 text, or a file path, told apart robustly.

Connection extras arrive as strings typed into a form, pasted from a JSON file or a secret store,
or mounted as files. This module only turns each field into bytes and PEM blocks; what those
blocks mean (certificate, key, PKCS#12) is decided in :mod:`.identity`.

No message raised here contains the value of a field: a value that is neither PEM nor a readable
file may well be key material pasted into the wrong place.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import re
import stat
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from ...errors import ClientIdentityError, ConfigurationError
from ..fields import FIELD, IDENTITY_FIELDS, too_large

if TYPE_CHECKING:
    from collections.abc import Mapping

# The error of a problem with each field: the server's CA is configuration, the others the client identity.
_ERRORS: dict[str, type[ConfigurationError]] = {name: FIELD[name].error for name in IDENTITY_FIELDS}

# The longest text taken as a file path (Linux's PATH_MAX).
_MAX_PATH_CHARS = 4096
# Text that can only be meant as a path (never PEM, nor the base64 of DER, which starts with "M"):
# when nothing is there, the message says so and shows it (a path is not a secret).
_PATH_LIKE = re.compile(r"^(?:[~/]|\.\.?/)|\.(?:pem|crt|cer|der|key|pfx|p12|bundle)$", re.IGNORECASE)
# open() fails with these when the text names nothing on disk: it is then taken as content.
_NOTHING_THERE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EINVAL})
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)

# One boundary line, BEGIN or END, each found by a single pass with a bounded label (RFC 7468
# labels are short): pairing them up is then a walk over the boundaries, linear in the input.
# A lazy pattern with a back-reference from each BEGIN to its END rescans the rest of the text
# for every BEGIN that has none: quadratic, seconds of a held GIL for a crafted field.
_PEM_BOUNDARY = re.compile(r"-----(BEGIN|END) ([A-Z0-9 #._-]{1,64}?)-----")
# RFC 1421 headers of OpenSSL's "traditional" encrypted keys; rebuilt so that a key whose line
# breaks were lost (pasted into a one-line field) still parses.
_PEM_HEADERS = re.compile(r"^\s*Proc-Type:\s*(\S+)\s+DEK-Info:\s*(\S+)(.*)$", re.DOTALL)
# RFC 7468: the base64 of a block in lines of 64 characters.
_PEM_LINE = re.compile(".{1,64}")

MaterialValue = str | bytes | os.PathLike[str]


@dataclass(frozen=True, repr=False)
class IdentityMaterial:
    """The client identity as configured: each field is PEM/base64 text, a file path, or None.

    Field names are the Airflow connection extras. ``bytes`` are taken as the content itself (PEM,
    DER or PKCS#12), never as a path; an ``os.PathLike`` is always a path. Empty strings count as
    unset, as an Airflow form sends them. Each field's type and size are checked here, once, when the
    material is made (a file's content when it is read); a numeric password becomes its digits.

    :param client_cert: the client certificate (and intermediates), PEM or DER.
    :param client_private_key: its private key, PEM or DER, optionally encrypted.
    :param client_private_key_password: the key's passphrase, if it is encrypted.
    :param client_pfx_secret: a PKCS#12 bundle instead of the PEM pair: base64 text or a path.
    :param client_pfx_password: the PKCS#12 password.
    :param ca_cert: the CA bundle that signs the bank's server certificate (default: system trust).
    """

    client_cert: MaterialValue | None = None
    client_private_key: MaterialValue | None = field(default=None, repr=False)
    client_private_key_password: str | bytes | None = field(default=None, repr=False)
    client_pfx_secret: MaterialValue | None = field(default=None, repr=False)
    client_pfx_password: str | bytes | None = field(default=None, repr=False)
    ca_cert: MaterialValue | None = None

    @classmethod
    def from_extra(cls, extra: Mapping[str, object]) -> IdentityMaterial:
        """Pick the identity fields out of a connection's extras (other keys are ignored).

        :param extra: the connection's extra dict.
        """
        return cls(*map(extra.get, IDENTITY_FIELDS))  # type: ignore[arg-type]  # checked by __post_init__

    def __post_init__(self) -> None:
        for name in IDENTITY_FIELDS:
            object.__setattr__(self, name, FIELD[name].read(getattr(self, name)))

    def __repr__(self) -> str:
        # Says which fields are set and nothing else: even client_cert may hold a pasted key.
        shown = ", ".join(f"{f.name}=<set>" for f in fields(self) if getattr(self, f.name) is not None)
        return f"IdentityMaterial({shown})"


@dataclass(frozen=True)
class PemBlock:
    """One PEM block, re-serialised in canonical form (64-column base64, LF line ends).

    :param label: the word after ``BEGIN`` (``CERTIFICATE``, ``PRIVATE KEY``...), or ``DER`` for a
        binary input that had no PEM armour.
    """

    label: str
    der: bytes
    text: str = field(repr=False)


@dataclass(frozen=True)
class FieldContent:
    """What one field held once read: its bytes, and whether they came from a file."""

    name: str
    data: bytes = field(repr=False)
    from_file: bool = False

    @property
    def where(self) -> str:
        """How messages refer to the input, without quoting it."""
        return f"the file named in {self.name}" if self.from_file else f"the text in {self.name}"


def password_bytes(value: str | bytes | os.PathLike[str] | None) -> bytes | None:
    """A password as bytes (UTF-8 for text), or None when unset."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    # surrogatepass: a password that is not valid Unicode still gets a clear "wrong password".
    return os.fspath(value).encode("utf-8", "surrogatepass")


def read_field(name: str, value: MaterialValue, *, base64_text: bool = False) -> FieldContent:
    """Read a field that holds either content or a file path.

    Text with a ``-----BEGIN`` line is PEM; otherwise text naming an existing file is a path;
    otherwise, when ``base64_text`` is set (PKCS#12), base64. Anything else is an error that names
    the field and never quotes the value (a path that does not exist is shown: it is no secret).
    The content read from a file is capped by the field's size limit (inline content was measured when
    the material was made).

    :param name: the connection extra key.
    :param value: the field's (present) value.
    :param base64_text: whether text may be base64 of a binary file (the PKCS#12 field).
    """
    error = _ERRORS[name]
    if isinstance(value, os.PathLike):
        data = _read_file(name, os.fspath(value), must_exist=True)
        assert data is not None  # for mypy: must_exist raises instead
        return FieldContent(name, data, from_file=True)
    if isinstance(value, bytes):
        return FieldContent(name, value, from_file=False)
    text = value.strip()
    if "-----BEGIN" in text:
        return FieldContent(name, text.encode("utf-8", "replace"), from_file=False)
    # No file path is that long or spans lines; such a value can only be (broken) content.
    could_be_path = 0 < len(text) <= _MAX_PATH_CHARS and "\n" not in text and "\x00" not in text
    if could_be_path:
        data = _read_file(name, text, must_exist=False)
        if data is not None:
            return FieldContent(name, data, from_file=True)
    if base64_text:
        decoded = decode_base64(_unescape_json(text))
        if decoded is not None:
            return FieldContent(name, decoded, from_file=False)
    if could_be_path and _PATH_LIKE.search(text):
        raise _missing_file(name, text)
    if base64_text:
        raise error(
            f"{name} is neither the path of a readable file nor base64 text of a PKCS#12 (.pfx) file.",
            field=name,
            hint=(
                f"Set {name} to the path of the .pfx/.p12 file on the worker, or to its content in base64 "
                "(base64 -w0 client.pfx). A path must exist on every worker and triggerer."
            ),
        )
    raise error(
        f"{name} is neither PEM text (no '-----BEGIN' line) nor the path of a readable file.",
        field=name,
        hint=(
            f"Set {name} to the PEM text including its -----BEGIN/-----END lines, or to the path of the "
            "file on the worker (it must exist on every worker and triggerer)."
        ),
    )


def _unescape_json(text: str) -> str:
    # PEM or base64 copied out of a JSON document keeps its escapes ("\n", "\/"): neither contains
    # a backslash legitimately, so undoing them is safe (a path may, so paths are never unescaped).
    if "\\n" in text or "\\r" in text:
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\r", "\n")
    if "\\/" in text:
        text = text.replace("\\/", "/")
    return text


def _missing_file(name: str, path: str) -> ConfigurationError:
    return _ERRORS[name](
        f"{name} names the file {path!r}, which does not exist on this machine.",
        field=name,
        hint=(
            f"Check the path in {name}: the file must exist on every worker and triggerer. Or paste the "
            "content itself into the field."
        ),
    )


def _nonblocking(path: str, flags: int) -> int:
    # Opening a named pipe for reading blocks until a writer comes; with O_NONBLOCK it returns at once
    # and the file's kind is checked before anything is read.
    return os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY)


def _read_file(name: str, path: str, *, must_exist: bool) -> bytes | None:
    """The bytes of the regular file at ``path``, at most the field's limit.

    :param must_exist: when False, None means nothing is at ``path`` (the caller takes the text as
        content); when True that is an error.
    """
    error = _ERRORS[name]
    limit = FIELD[name].limit
    expanded = os.path.expanduser(path)
    try:
        with open(expanded, "rb", opener=_nonblocking) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _not_a_regular_file(name, path, info.st_mode)
            if info.st_size > limit:  # refused before it is read
                raise too_large(name, info.st_size, limit, where=f"The file named in {name}", error=error)
            data = handle.read(limit + 1)
    except OSError as exc:
        if exc.errno in _NOTHING_THERE and not must_exist:
            return None
        if exc.errno == errno.EISDIR:
            raise _not_a_regular_file(name, path, stat.S_IFDIR) from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise _missing_file(name, path) from None
        # strerror ("Permission denied") is safe to show; the path is left out like any value.
        raise error(
            f"The file named in {name} cannot be read: {exc.strerror or type(exc).__name__}.",
            field=name,
            hint="Check that the file exists on this worker and is readable by the user running the task.",
        ) from None
    if len(data) > limit:  # a file that grew since fstat (or reports no size, as /proc files do)
        raise too_large(name, len(data), limit, where=f"The file named in {name}", error=error)
    return data


def _not_a_regular_file(name: str, path: str, mode: int) -> ConfigurationError:
    kind = next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")
    return _ERRORS[name](
        f"{name} names {path!r}, which is {kind}, not a regular file.",
        field=name,
        hint=f"Point {name} at the certificate or key file itself, or paste its content into the field.",
    )


def decode_base64(text: str) -> bytes | None:
    """Decode base64 text that may hold whitespace, line breaks, the URL-safe alphabet or no padding.

    :returns: the bytes, or None if the text is not base64.
    """
    compact = "".join(text.split())
    if not compact:
        return None
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact = compact.rstrip("=")
    if len(compact) % 4 == 1:
        return None
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def pem_blocks(content: FieldContent) -> list[PemBlock]:
    """Split content into PEM blocks; binary content without PEM armour becomes one ``DER`` block.

    Text outside the blocks is ignored (``openssl pkcs12`` writes "Bag Attributes" there). The
    base64 of each block is re-wrapped, so lost or doubled line breaks, CRLF and indentation do
    not matter.

    :param content: a field as read by :func:`read_field`.
    :raises ClientIdentityError: when a block is truncated or its base64 is damaged.
    """
    if b"-----BEGIN" not in content.data:
        return [PemBlock("DER", content.data, "")] if content.data.strip() else []
    text = _unescape_json(content.data.decode("utf-8", "replace"))
    blocks: list[PemBlock] = []
    label, body_start = None, 0
    for boundary in _PEM_BOUNDARY.finditer(text):
        if boundary.group(1) == "BEGIN":
            # A BEGIN inside an open block leaves that block without its END: counted below.
            label, body_start = boundary.group(2), boundary.end()
        elif boundary.group(2) == label:
            blocks.append(_canonical_block(content, label, text[body_start : boundary.start()]))
            label = None
    if text.count("-----BEGIN") != len(blocks):
        raise ClientIdentityError(
            f"Malformed PEM in {content.where}: a -----BEGIN line has no matching -----END line "
            "(truncated copy?).",
            field=content.name,
            hint=f"Copy the whole PEM into {content.name}, from -----BEGIN to -----END, both lines included.",
        )
    return blocks


def _canonical_block(content: FieldContent, label: str, body: str) -> PemBlock:
    headers = ""
    found = _PEM_HEADERS.match(body)
    if found:
        headers = f"Proc-Type: {found.group(1)}\nDEK-Info: {found.group(2)}\n\n"
        body = found.group(3)
    compact = "".join(body.split())
    try:
        der = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        der = b""
    if not der:
        raise ClientIdentityError(
            f"Malformed PEM in {content.where}: the base64 inside the {label} block is damaged.",
            field=content.name,
            hint=(
                f"Copy the PEM into {content.name} again, unchanged. When it goes through JSON, keep the "
                "line breaks as \\n escapes."
            ),
        )
    lines = "\n".join(_PEM_LINE.findall(compact))
    return PemBlock(label, der, f"-----BEGIN {label}-----\n{headers}{lines}\n-----END {label}-----\n")


__all__ = [
    "FieldContent",
    "IdentityMaterial",
    "MaterialValue",
    "PemBlock",
    "decode_base64",
    "password_bytes",
    "pem_blocks",
    "read_field",
]

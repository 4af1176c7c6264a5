"""The connection's fields, one table: from it come the form, the size limits, the identity fields, the
defaults and ranges of the settings, the parsing of a Connection, and which values are secret.

Each row says what a field is (its key, its label and help in the form), what it may hold (its kind, its
size limit, the range of a number) and whether it is secret. The form (``get_provider_info``), the hook
(a Connection turned into settings) and the settings themselves read it, so they never disagree. Standard
library only: ``get_provider_info`` runs in every Airflow component during provider discovery.

A connection is read by workers and by the triggerer, whose event loop serves every deferred task of the
deployment; parsing holds the GIL. A cap per field keeps any value, inline or in the file it names, small
enough to be parsed or refused at once. Each limit is far above any legitimate value (the system's whole CA
bundle is about 220 KB). Size errors name the field and both sizes, never the value: it may be key material.

Airflow masks extras in its UI, REST API and logs by key name only (``password``, ``secret``,
``private_key``, ``token``, ``proxy``, ...). Every key that holds a secret therefore carries such a word,
and no other key does, or Airflow would hide harmless values such as the CA path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from airflow_provider_bankapi.errors import ClientIdentityError, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

KIB = 1024
MIB = 1024 * KIB

PRODUCTION_BASE_URL = "https://api.bancodigital.com/public/gw_banking/v1"
#: The token endpoint's path under the Base URL.
TOKEN_PATH = "/auth/token-v2"
#: Where tokens are shared: every process of a host, every worker (an Airflow Variable), one process, none.
CACHE_SCOPES = ("host", "cluster", "process", "off")
DEFAULT_CACHE_SCOPE = "host"
#: The request header that carries a fresh UUID per request (Open Finance Brasil's name; the bank's support
#: desk asks for it first).
DEFAULT_INTERACTION_ID_HEADER = "x-fapi-interaction-id"
#: The connection's ``interaction_id_header`` value that sends no interaction id.
NO_INTERACTION_ID = "none"

#: The bank's sample client renews its token 5 minutes before expiry.
DEFAULT_REFRESH_MARGIN = 300.0
#: Warn when the client certificate expires within this many days.
DEFAULT_EXPIRY_WARNING_DAYS = 30
#: The most balance calls one task makes at once: beyond it the bank's rate limit answers, not the bank.
MAX_WORKERS = 16
DEFAULT_MAX_WORKERS = 4  # concurrent balance calls of one batch
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_MAX_TOTAL_WAIT = 120.0
DEFAULT_POOL_MAXSIZE = MAX_WORKERS  # one kept-alive connection per worker: a batch shares one Session
#: The largest answer of a protected call, in bytes, on the wire and once inflated (gzip/deflate): a
#: balance is a few hundred bytes, a page of statements some kilobytes. Raise it per connection or per
#: operator (``max_response_bytes``) for a resource that is legitimately larger.
DEFAULT_MAX_RESPONSE_BYTES = 16 * MIB


@dataclass(frozen=True)
class Number:
    """A number of the settings: its default and its range, both ends included unless ``above_zero``.

    Far beyond any real need, and small enough that sockets, sleeps and clocks take them: ``timeout=1e10``
    used to pass and fail every call with a bare OverflowError.
    """

    default: float
    least: float
    largest: float
    whole: bool = False
    above_zero: bool = False

    def describe(self) -> str:
        """The range in words, for an error: "a whole number from 0 to 100"."""
        if self.whole:
            return f"a whole number from {int(self.least)} to {int(self.largest)}"
        if self.above_zero:
            return f"a number above {self.least:g} and at most {self.largest:g}"
        return f"a number from {self.least:g} to {self.largest:g}"

    def accepts(self, value: object) -> bool:
        """Whether ``value`` is a number of this kind in this range (JSON true is not 1 second)."""
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        # NaN fails both comparisons; infinity fails the upper bound.
        return (self.least < value if self.above_zero else self.least <= value) and value <= self.largest


#: Every number of the settings, by the name of the setting.
NUMBERS: Mapping[str, Number] = MappingProxyType(
    {
        "connect_timeout": Number(DEFAULT_CONNECT_TIMEOUT, 0, 3600, above_zero=True),
        "read_timeout": Number(DEFAULT_READ_TIMEOUT, 0, 3600, above_zero=True),
        "max_retries": Number(DEFAULT_MAX_RETRIES, 0, 100, whole=True),
        "backoff_base": Number(DEFAULT_BACKOFF_BASE, 0, 3600),
        "backoff_max": Number(DEFAULT_BACKOFF_MAX, 0, 3600),
        "max_total_wait": Number(DEFAULT_MAX_TOTAL_WAIT, 0, 86400),
        "pool_maxsize": Number(DEFAULT_POOL_MAXSIZE, 1, 1000, whole=True),
        "max_response_bytes": Number(DEFAULT_MAX_RESPONSE_BYTES, 1024, 1024**3, whole=True),
        "refresh_margin": Number(DEFAULT_REFRESH_MARGIN, 0, 86400),
        "expiry_warning_days": Number(DEFAULT_EXPIRY_WARNING_DAYS, 0, 3650, whole=True),
    }
)

#: The largest value of a field with no limit of its own (timeouts, scopes, the token path, the proxy URL...).
OTHER_FIELD_LIMIT = 4 * KIB

# What a field holds, and so how it is read and drawn in the form.
TEXT = "text"  # one line of text
MATERIAL = "material"  # certificate or key material: PEM/base64 text, a file path, or bytes (several lines)
BUNDLE = "bundle"  # a PKCS#12 bundle: base64 text, a file path, or bytes (one line)
PASSWORD = "password"  # a key's or a bundle's password (a JSON number is taken as its digits)
URL = "url"  # a URL whose password part is the secret
NUMBER = "number"
CHOICE = "choice"


@dataclass(frozen=True)
class ConnectionField:
    """One field of a ``bankapi`` connection.

    :param key: ``host``, ``login`` or ``password`` (the Base URL, the client_id and the client_secret), or
        the key of the extra, as users write it in the connection's extra JSON (public API).
    :param label: the form's label; ``description`` its help text (for Airflow's standard fields, the
        placeholder).
    :param kind: what it holds (``TEXT``, ``MATERIAL``, ``BUNDLE``, ``PASSWORD``, ``URL``, ``NUMBER``,
        ``CHOICE``).
    :param limit: the largest value, in bytes, inline or as the content of the file it names.
    :param secret: whether the value is a secret (masked in logs; its key carries a word Airflow masks).
    :param default: the value when the field is unset; ``prefill`` puts it in the form.
    :param setting: for a number, the setting of :data:`NUMBERS` it fills (its default and range).
    :param choices: for a choice, the values it may take.
    :param identity: whether it is part of the client identity (``IdentityMaterial``).
    """

    key: str
    label: str
    description: str = ""
    kind: str = TEXT
    limit: int = OTHER_FIELD_LIMIT
    secret: bool = False
    default: Any = None
    prefill: bool = False
    setting: str = ""
    choices: tuple[str, ...] = ()
    identity: bool = False

    @property
    def error(self) -> type[ConfigurationError]:
        """The error class of a problem with this field: the client identity's own, or configuration."""
        return ClientIdentityError if self.identity and self.key != "ca_cert" else ConfigurationError

    def read(self, value: object) -> Any:
        """The field's value as the settings take it, or the default when unset (None or blank text).

        The only check of the field's size and type (and of a number's range): refused naming the field and
        how to fix it, never echoing the value.
        """
        size = size_of(value)
        if size > self.limit:
            raise too_large(self.key, size, self.limit, error=self.error)
        if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
            return self.default  # the form saves an untouched field as an empty string
        kind = self.kind
        if kind == NUMBER:
            return self._number(value)
        if kind == CHOICE:
            choice = value.strip().lower() if isinstance(value, str) else repr(value)
            if choice not in self.choices:
                raise ConfigurationError(
                    f"{self.key} must be one of {', '.join(self.choices)}; got {choice!r}.", field=self.key
                )
            return choice
        if isinstance(value, str) or (self.identity and isinstance(value, (bytes, os.PathLike))):
            return value
        if kind == PASSWORD and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # a numeric password typed into JSON extras without quotes
        if self.identity:
            raise ClientIdentityError(
                f"{self.key} must be text (PEM, base64 or a file path), not {type(value).__name__}.",
                field=self.key,
                hint=f"Set {self.key} to a single string in the connection's extras.",
            )
        # Never echoed: the proxy URL may hold a password.
        raise ConfigurationError(f"The extra field {self.key!r} must be text.", field=self.key)

    def _number(self, value: object) -> float:
        """A JSON number or numeric text, in the range of the setting it fills ("3" or 3.0 retries are 3)."""
        number = NUMBERS[self.setting]
        parsed: float | None
        try:
            if isinstance(value, bool):
                raise TypeError  # JSON true is not 1 second
            parsed = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            parsed = None
        if parsed is not None and number.whole and parsed.is_integer():
            parsed = int(parsed)
        if parsed is None or not number.accepts(parsed):
            raise ConfigurationError(
                f"The extra field {self.key!r} must be {number.describe()}.", field=self.key
            )
        return parsed


#: The connection's fields: ``host``, ``login`` and ``password``, then the extras in the order the form
#: shows them: identity first (PEM pair or PKCS#12 bundle, then the bank's CA), then the token, then the
#: transport.
#:
#: Certificate and key material is drawn as a textarea ("multiline"), the private key too although it is
#: secret: the "password" format is an <input type=password>, and browsers strip line breaks from such
#: inputs, which would break pasted PEM. Its key name holds "private_key", so Airflow still masks its value
#: everywhere once saved. Single-line secrets are drawn as "password".
FIELDS: tuple[ConnectionField, ...] = (
    ConnectionField("host", "Base URL", PRODUCTION_BASE_URL, limit=2 * KIB),
    ConnectionField("login", "Client ID", "client_id issued by the bank", limit=1 * KIB),
    ConnectionField(
        "password",
        "Client secret",
        "client_secret issued by the bank",
        kind=PASSWORD,
        limit=4 * KIB,
        secret=True,
    ),
    ConnectionField(
        "client_cert",
        "Client certificate",
        "The client certificate registered with the bank for mutual TLS: PEM text "
        "(-----BEGIN CERTIFICATE-----, intermediates may follow) or a file path on the workers. "
        "Leave empty when you use a PKCS#12 bundle.",
        kind=MATERIAL,
        limit=256 * KIB,
        identity=True,
    ),
    ConnectionField(
        "client_private_key",
        "Client private key",
        "The private key of the client certificate: PEM text or a file path on the workers. "
        "Masked by Airflow.",
        kind=MATERIAL,
        limit=64 * KIB,
        secret=True,
        identity=True,
    ),
    ConnectionField(
        "client_private_key_password",
        "Private key passphrase",
        "Only if the private key is encrypted: its passphrase.",
        kind=PASSWORD,
        limit=1 * KIB,
        secret=True,
        identity=True,
    ),
    ConnectionField(
        "client_pfx_secret",
        "PKCS#12 bundle (.pfx / .p12)",
        "Instead of the certificate and key above: the PKCS#12 bundle holding both, as base64 "
        "text or a file path on the workers. Masked by Airflow.",
        kind=BUNDLE,
        limit=256 * KIB,
        secret=True,
        identity=True,
    ),
    ConnectionField(
        "client_pfx_password",
        "PKCS#12 password",
        "The password of the PKCS#12 bundle, if it has one.",
        kind=PASSWORD,
        limit=1 * KIB,
        secret=True,
        identity=True,
    ),
    ConnectionField(
        "ca_cert",
        "Bank CA certificate",
        "The CA that signed the bank's server certificate: PEM text or a file path. "
        "Leave empty to trust OpenSSL's default CA store (the system's, or SSL_CERT_FILE).",
        kind=MATERIAL,
        # OpenSSL's trust store takes superlinear time to load: 512 KiB of CA certificates (twice the
        # system's bundle) load in about half a second, 1 MiB in about 1.4 s.
        limit=512 * KIB,
        identity=True,
    ),
    ConnectionField(
        "auth_endpoint",
        "Token endpoint",
        "Path of the OAuth2 token endpoint under the Base URL.",
        default=TOKEN_PATH,
        prefill=True,
    ),
    ConnectionField(
        "cache_scope",
        "Token cache scope",
        "Where access tokens are shared between task runs: host = every task on the same worker "
        "machine (default); cluster = every worker, through an Airflow Variable; process = "
        "one task process only; off = a new token for every client.",
        kind=CHOICE,
        default=DEFAULT_CACHE_SCOPE,
        prefill=True,
        choices=CACHE_SCOPES,
    ),
    ConnectionField(
        "refresh_margin",
        "Token refresh margin (seconds)",
        "A token is renewed this many seconds before it expires (the bank recommends 5 minutes).",
        kind=NUMBER,
        default=DEFAULT_REFRESH_MARGIN,
        prefill=True,
        setting="refresh_margin",
    ),
    ConnectionField(
        "timeout",
        "Timeout (seconds)",
        f"How long to wait for the bank to answer one request. Default: {DEFAULT_READ_TIMEOUT:g}.",
        kind=NUMBER,
        default=DEFAULT_READ_TIMEOUT,
        setting="read_timeout",
    ),
    ConnectionField(
        "max_retries",
        "Maximum retries",
        "How many times a request is retried after a transient failure (429, 503, a dropped "
        "connection), honouring Retry-After. 0 disables retries. "
        f"Default: {DEFAULT_MAX_RETRIES}.",
        kind=NUMBER,
        default=DEFAULT_MAX_RETRIES,
        setting="max_retries",
    ),
    ConnectionField(
        "max_response_bytes",
        "Largest answer (bytes)",
        "The largest answer of one call, on the wire and once inflated; a larger one is refused "
        "while it is read. Raise it for legitimately large resources (long statements). Token "
        f"answers keep a fixed 1 MiB. Default: {DEFAULT_MAX_RESPONSE_BYTES} (16 MiB).",
        kind=NUMBER,
        default=DEFAULT_MAX_RESPONSE_BYTES,
        setting="max_response_bytes",
    ),
    ConnectionField(
        "proxy",
        "Egress proxy",
        "URL of the HTTP(S) proxy through which requests to the bank leave your network, "
        "e.g. http://user:password@proxy.internal:3128. Masked by Airflow.",
        kind=URL,
        secret=True,
    ),
    ConnectionField(
        "interaction_id_header",
        "Interaction id header",
        "The request header that carries a fresh UUID on every request, kept on every error so "
        f"that the bank's support desk can find the request. {NO_INTERACTION_ID!r} sends none. "
        f"Default: {DEFAULT_INTERACTION_ID_HEADER}.",
        default=DEFAULT_INTERACTION_ID_HEADER,
        prefill=True,
    ),
)

#: Airflow's standard fields (the Base URL, the Client ID, the Client secret), then the extras.
STANDARD_FIELDS, EXTRA_FIELDS = FIELDS[:3], FIELDS[3:]
#: Every field by its key.
FIELD: Mapping[str, ConnectionField] = MappingProxyType({field.key: field for field in FIELDS})
#: Every valid key of the connection's extra JSON. The hook rejects any other key.
EXTRA_KEYS: tuple[str, ...] = tuple(field.key for field in EXTRA_FIELDS)
#: The extras that make up a client identity, named exactly as the Airflow extras.
IDENTITY_FIELDS: tuple[str, ...] = tuple(field.key for field in FIELDS if field.identity)
#: The secret fields that hold key material (a private key, a PKCS#12 bundle): never sent anywhere, so never
#: echoed back, and large; the other secrets are short values a server might echo.
KEY_MATERIAL_FIELDS: frozenset[str] = frozenset(
    field.key for field in FIELDS if field.secret and field.kind in (MATERIAL, BUNDLE)
)


def limit_of(name: str) -> int:
    """The largest value, in bytes, the connection field ``name`` may hold."""
    field = FIELD.get(name)
    return field.limit if field is not None else OTHER_FIELD_LIMIT


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


def too_large(
    name: str,
    size: int,
    limit: int,
    *,
    where: str | None = None,
    error: type[ConfigurationError] = ConfigurationError,
) -> ConfigurationError:
    """The error for a value of ``size`` bytes over its field's ``limit``: the field and both sizes, never
    the value.

    :param where: how the message refers to the value (default: the field's name).
    """
    shown, cap = amount(size), amount(limit)
    if shown == _amount(limit, exact=False):  # 1.0 MiB against 1 MiB says nothing: give the bytes
        shown, cap = f"{size} bytes", f"{cap} ({limit} bytes)"
    return error(
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


def check_range(name: str, value: object, *, where: str | None = None) -> None:
    """Refuse a number out of the range :data:`~.fields.NUMBERS` gives the setting ``name``, naming the field
    (``where``, else ``name``) and the range.
    """
    number = NUMBERS[name]
    if not number.accepts(value):
        shown = repr(value) if isinstance(value, (int, float)) else type(value).__name__
        raise ConfigurationError(
            f"{where or name} must be {number.describe()}; got {shown}.", field=where or name
        )

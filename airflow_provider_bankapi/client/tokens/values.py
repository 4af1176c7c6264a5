"""Access tokens as values: the bank's answer parsed strictly, freshness, the cache key, the stored record.

Pure: no I/O and no clock. The time is always passed in, so tests (and the cache) control it.

A token is bound to the client certificate that fetched it (RFC 8705; the bank: "use the same mTLS
material for the token and for the protected calls"), so the cache key holds the certificate's SHA-256
fingerprint: a token is never offered with another certificate, and a rotated certificate means a new
token. The key is also bound to the client_secret, through a slow salted hash of it, so that only a
connection holding the same secret reuses a token, and the key (a file name, a Variable name) makes
guessing the secret offline costly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from airflow_provider_bankapi.client.fields import DEFAULT_REFRESH_MARGIN, TOKEN_PATH
from airflow_provider_bankapi.client.settings import TOKEN_ANSWER_LIMIT
from airflow_provider_bankapi.errors import TokenResponseError

#: A stated lifetime above a year is a unit error or a broken server, not generosity.
MAX_LIFETIME = 366 * 24 * 3600
#: A token goes into an ``Authorization`` header as is; real tokens (JWTs included) stay far below this.
MAX_TOKEN_LENGTH = 16 * 1024
#: The transport already stops reading a token answer at this size; parsing checks it again.
MAX_BODY_BYTES = TOKEN_ANSWER_LIMIT
#: Version of the record the stores write, so that a future layout never misreads an old one.
RECORD_FORMAT = "bankapi-token/1"

# Visible ASCII only: the value is sent as "Authorization: Bearer <token>", where whitespace or control
# characters would break (or inject into) the header. RFC 6750's b64token is a subset of this.
_HEADER_SAFE_TOKEN = re.compile(r"[\x21-\x7e]+")
# ASCII digits only: int() would also take "٣٦٠٠", "+60", " 60" or "6_0", which no contract promises.
_DIGITS = re.compile(r"[0-9]{1,12}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_KEY_DOMAIN = "airflow-provider-bankapi/token-cache-key/2"
#: scrypt's interactive-login cost (RFC 7914: N=2**14, r=8, p=1; 16 MiB): tens of milliseconds per key,
#: paid once per process and connection, and by whoever guesses the secret from a key, per guess.
_SCRYPT_COST = {"n": 2**14, "r": 8, "p": 1}
_HINT = (
    'The bank documents the answer as {"access_token": "...", "token_type": "Bearer", '
    f'"expires_in": 3600}}. Check that auth_endpoint is the token path ({TOKEN_PATH}) of this environment.'
)


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class AccessToken:
    """A bearer token with an absolute lifetime.

    Construction checks every field (raising :class:`ValueError` that never shows the token), so a value
    read back from a file or a Variable is as sane as one just parsed.

    :param access_token: the token itself; never shown by ``repr``.
    :param token_type: ``Bearer``.
    :param issued_at: when the bank's answer arrived, epoch seconds.
    :param expires_at: ``issued_at`` plus the stated ``expires_in``, epoch seconds.
    """

    access_token: str = field(repr=False)
    token_type: str
    issued_at: float
    expires_at: float

    def __post_init__(self) -> None:
        if not isinstance(self.access_token, str) or not _HEADER_SAFE_TOKEN.fullmatch(self.access_token):
            raise ValueError("access_token must be a non-empty string of visible ASCII characters.")
        if len(self.access_token) > MAX_TOKEN_LENGTH:
            raise ValueError(f"access_token is longer than {MAX_TOKEN_LENGTH} characters.")
        if not isinstance(self.token_type, str) or not self.token_type:
            raise ValueError("token_type must be a non-empty string.")
        if not _is_seconds(self.issued_at) or not _is_seconds(self.expires_at):
            raise ValueError("issued_at and expires_at must be finite numbers of epoch seconds.")
        # The slack absorbs float rounding: now + expires_in can land a few hundred nanoseconds past
        # now + MAX_LIFETIME (issued at 506968725.5413906, for one).
        if not 0 < self.expires_at - self.issued_at <= MAX_LIFETIME + 1e-3:
            raise ValueError(f"a token lives more than 0 and at most {MAX_LIFETIME} seconds.")
        object.__setattr__(self, "issued_at", float(self.issued_at))
        object.__setattr__(self, "expires_at", float(self.expires_at))

    @property
    def lifetime(self) -> float:
        """The lifetime the bank stated, in seconds."""
        return self.expires_at - self.issued_at

    def is_fresh(self, now: float, margin: float = DEFAULT_REFRESH_MARGIN) -> bool:
        """Whether to use this token at ``now``, or fetch a new one.

        Fresh means ``now < expires_at - min(margin, lifetime / 2)``: renewed ``margin`` early (the bank
        renews 5 minutes early), but a short-lived token still serves its first half. A negative or NaN
        margin counts as none, so a token is never used past its stated lifetime.

        :param now: epoch seconds.
        :param margin: seconds before expiry at which the token is renewed.
        """
        early = min(margin, self.lifetime / 2) if margin > 0 else 0.0
        return now < self.expires_at - early


def _kind(value: object) -> str:
    # What came, without ever showing it: a token_type field might hold the token itself.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    return "an object" if isinstance(value, Mapping) else "not a JSON value"


def _fault(message: str, name: str) -> TokenResponseError:
    return TokenResponseError(message, field=name, hint=_HINT)


def _decode(body: bytes | str | Mapping[str, object]) -> Mapping[str, object]:
    data: object = body
    if isinstance(body, (bytes, bytearray, str)):
        if len(body) > MAX_BODY_BYTES:
            raise _fault(f"The token answer is larger than {MAX_BODY_BYTES} bytes.", "body")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise _fault("The token endpoint answered 2xx with a body that is not JSON.", "body") from None
    if not isinstance(data, Mapping):
        raise _fault(f"The token answer must be a JSON object; it is {_kind(data)}.", "body")
    return data


def _access_token(data: Mapping[str, object]) -> str:
    value = data.get("access_token")
    if not isinstance(value, str) or not value:
        found = "missing" if "access_token" not in data else _kind(value)
        raise _fault(
            f"The token answer has no access_token (a non-empty string); it is {found}.", "access_token"
        )
    if len(value) > MAX_TOKEN_LENGTH:
        raise _fault(f"access_token is longer than {MAX_TOKEN_LENGTH} characters.", "access_token")
    if not _HEADER_SAFE_TOKEN.fullmatch(value):
        raise _fault(
            "access_token holds whitespace, control or non-ASCII characters, which cannot be sent in an "
            "Authorization header.",
            "access_token",
        )
    return value


def _token_type(data: Mapping[str, object]) -> str:
    value = data.get("token_type")
    if isinstance(value, str) and value.lower() == "bearer":  # RFC 6749 7.1: case-insensitive
        return "Bearer"
    if "token_type" not in data:
        found = "missing"
    elif isinstance(value, str) and value:
        found = "a string naming another token type"
    else:
        found = _kind(value)
    raise _fault(f"token_type must be Bearer (in any case); it is {found}.", "token_type")


def _expires_in(data: Mapping[str, object]) -> int:
    """The lifetime in whole seconds: a positive integer, a whole-valued JSON number or a string of digits.

    A fractional number (``1.5``) is refused rather than rounded: the contract says seconds, and a
    fraction hints at another unit. Anything above :data:`MAX_LIFETIME` is refused as absurd.
    """
    if "expires_in" not in data:
        raise _fault("The token answer has no expires_in, so its lifetime is unknown.", "expires_in")
    value = data["expires_in"]
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        seconds = int(value)
    if seconds is None:
        raise _fault(
            f"expires_in must be a whole number of seconds or a string of digits; it is {_kind(value)}"
            + (" with a fraction or not finite." if isinstance(value, float) else "."),
            "expires_in",
        )
    if not 0 < seconds <= MAX_LIFETIME:
        shown = seconds if abs(seconds) < 10**15 else "out of range"
        raise _fault(f"expires_in must be between 1 and {MAX_LIFETIME} seconds; it is {shown}.", "expires_in")
    return seconds


def parse_token_response(body: bytes | str | Mapping[str, object], *, now: float) -> AccessToken:
    """The token in the bank's 2xx answer, parsed strictly.

    Accepted: a JSON object with ``access_token`` (a non-empty string of visible ASCII), ``token_type``
    ``Bearer`` in any case, and ``expires_in`` as a positive integer, a whole-valued number (``3600.0``)
    or a string of ASCII digits (``"3600"``), at most a year. Other fields are ignored. Anything else
    raises :class:`TokenResponseError` whose ``field`` is ``body``, ``access_token``, ``token_type`` or
    ``expires_in``; no message ever shows a value from the body.

    :param body: the response body, or its decoded JSON object.
    :param now: when the answer arrived, epoch seconds; the token's lifetime counts from it.
    :raises ValueError: ``now`` is not a finite number (a caller's bug, not the bank's).
    """
    if not _is_seconds(now):
        raise ValueError("now must be a finite number of epoch seconds.")
    data = _decode(body)
    access_token = _access_token(data)
    token_type = _token_type(data)
    lifetime = _expires_in(data)
    return AccessToken(access_token, token_type, float(now), float(now) + lifetime)


@functools.lru_cache(maxsize=32)
def secret_verifier(client_secret: str, salt: bytes) -> bytes:
    """The scrypt of the secret with the key's salt: the slow part of :func:`cache_key`.

    Cached: a process derives it once per connection. The cache lives in this process's memory only, next
    to the secret it is derived from (the host store can keep it too: see ``kept_key``).
    """
    return hashlib.scrypt(client_secret.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT_COST)


def cache_salt(token_url: str, client_id: str, certificate_fingerprint: str) -> bytes:
    """The salt of :func:`cache_key`: SHA-256 of the token URL, client_id and certificate, encoded as one
    JSON array (so no two different triples share an encoding).

    :raises ValueError: an empty part, or a fingerprint that is not 64 hex digits.
    """
    fingerprint = certificate_fingerprint.replace(":", "").lower()
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise ValueError("certificate_fingerprint must be a SHA-256 fingerprint (64 hex digits).")
    if not token_url or not client_id:
        raise ValueError("token_url, client_id and client_secret must not be empty.")
    material = json.dumps([_KEY_DOMAIN, token_url, client_id, fingerprint], separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8")).digest()


def key_of_verifier(salt: bytes, verifier: bytes) -> str:
    """The cache key of a salt and the secret's verifier (:func:`secret_verifier`)."""
    return hashlib.sha256(salt + verifier).hexdigest()


def cache_key(token_url: str, client_id: str, certificate_fingerprint: str, client_secret: str) -> str:
    """The key under which a token is cached: SHA-256 hex of (token URL, client_id, certificate) and of a
    verifier of the client_secret.

    The three are encoded as one JSON array, so no two different triples share an encoding. The verifier
    is scrypt of the secret salted with that encoding (its SHA-256): a token is reused only by a
    connection holding the same secret (a wrong or rotated one gets a key of its own, so it never uses or
    evicts the right one's token), nothing secret is stored, and testing a guess of the secret against a
    key costs one scrypt, with a salt that serves no other credential.

    :param token_url: the absolute URL of the token endpoint.
    :param client_id: the credential's client_id.
    :param certificate_fingerprint: SHA-256 of the client certificate's DER, hex (any case, colons allowed).
    :param client_secret: the credential's client_secret.
    :raises ValueError: an empty part, or a fingerprint that is not 64 hex digits.
    """
    salt = cache_salt(token_url, client_id, certificate_fingerprint)
    if not client_secret:
        raise ValueError("token_url, client_id and client_secret must not be empty.")
    return key_of_verifier(salt, secret_verifier(client_secret, salt))


def token_record(key: str, token: AccessToken) -> str:
    """The JSON text a store keeps for ``token`` under ``key`` (read back with :func:`token_from_record`)."""
    return json.dumps(
        {
            "format": RECORD_FORMAT,
            "key": key,
            "access_token": token.access_token,
            "token_type": token.token_type,
            "issued_at": token.issued_at,
            "expires_at": token.expires_at,
        },
        separators=(",", ":"),
    )


def token_from_record(key: str, record: str | bytes) -> AccessToken:
    """The token in a stored record, checked like a new one: a store's content is never trusted blindly.

    :param key: the cache key the caller looked up; a record written for another key is refused.
    :param record: the text from :func:`token_record`.
    :raises ValueError: the record is not one of ours or not sane (the message never shows the token).
    """
    try:
        data = json.loads(record)
    except (ValueError, RecursionError):
        raise ValueError("the token record is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the token record is not a JSON object")
    if data.get("format") != RECORD_FORMAT:
        raise ValueError("the token record has an unknown format")
    if data.get("key") != key:
        raise ValueError("the token record was written for another cache key")
    try:
        return AccessToken(data["access_token"], data["token_type"], data["issued_at"], data["expires_at"])
    except KeyError as exc:
        raise ValueError(f"the token record has no {exc.args[0]}") from None
    except ValueError as exc:  # AccessToken's own checks; their messages never show the token
        raise ValueError(f"the token record holds no usable token ({exc})") from None

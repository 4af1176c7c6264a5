"""The token cache key's scrypt, derived once per host and kept beside the host token files.

The cache key binds a token to the client secret through scrypt (tens of milliseconds, on purpose: see
:func:`~airflow_provider_bankapi.client.tokens.values.cache_key`), which every new task process paid
again. The first process on a host keeps the scrypt's output (the verifier) in a private file of the
host store's directory; the next ones read it back instead of deriving it. The key itself is unchanged:
processes that keep nothing (another scope, another host) compute the same key.

What the file holds, and why it makes no guess of the secret cheaper:

- its name is a SHA-256 of the key's salt, which comes from the token URL, the client_id and the
  certificate's fingerprint only: it says nothing of the secret;
- the verifier: testing a guess of the secret against it costs one scrypt, exactly as against the key
  (which is a SHA-256 of it and of the salt, and is a file name and a Variable name anyway);
- a check that this verifier belongs to the secret the process holds (else a connection with a wrong or
  rotated secret would take the right one's key): an HMAC-SHA256 of the salt and the secret whose key
  is a SHA-256 of the client's private key. Without the private key the check tests no guess at all;
  it is a fast test only for someone who holds the private key too, that is the connection's key
  material, which lives where its secret lives.

The file is 0600 in the store's 0700 directory, written atomically, and read only when it is a regular
file of this user open to nobody else, like the token files (see
:mod:`~airflow_provider_bankapi.client.tokens.host`). Anything wrong with it means one scrypt, and a new
file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import TYPE_CHECKING

from airflow_provider_bankapi.client.tokens.values import cache_salt, key_of_verifier, secret_verifier
from airflow_provider_bankapi.errors import ConfigurationError

if TYPE_CHECKING:
    from airflow_provider_bankapi.client.tokens.host import HostTokenStore

log = logging.getLogger(__name__)

RECORD_FORMAT = "bankapi-secret-verifier/1"
_FILE_DOMAIN = b"airflow-provider-bankapi/kept-verifier-file/1"
_CHECK_DOMAIN = b"airflow-provider-bankapi/kept-verifier-check/1"
_VERIFIER_BYTES = 32


def verifier_file_key(salt: bytes) -> str:
    """The hex name (without suffix) of the file that keeps the verifier of a salt."""
    return hashlib.sha256(_FILE_DOMAIN + salt).hexdigest()


def secret_check(private_key_digest: bytes, salt: bytes, client_secret: str) -> bytes:
    """HMAC-SHA256, keyed by the private key's digest, of the salt and the secret."""
    message = _CHECK_DOMAIN + salt + client_secret.encode("utf-8")
    return hmac.new(private_key_digest, message, hashlib.sha256).digest()


def _verifier_in(record: bytes | None, check: bytes) -> bytes | None:
    if record is None:
        return None
    try:
        data = json.loads(record)
        if data["format"] != RECORD_FORMAT:
            return None
        verifier, kept_check = bytes.fromhex(data["verifier"]), bytes.fromhex(data["check"])
    except (ValueError, KeyError, TypeError):
        return None
    if len(verifier) != _VERIFIER_BYTES or not hmac.compare_digest(kept_check, check):
        return None  # another secret's (a rotated or a wrong one), or damaged
    return verifier


def kept_cache_key(
    store: HostTokenStore,
    token_url: str,
    client_id: str,
    certificate_fingerprint: str,
    client_secret: str,
    private_key_digest: bytes,
) -> str:
    """:func:`~airflow_provider_bankapi.client.tokens.values.cache_key`, with its scrypt read from the host
    store's directory when an earlier process kept it there for this secret, else derived and kept.

    :param store: the host store whose directory keeps the verifier.
    :param private_key_digest: the identity's private key digest, which keys the check (see the module).
    """
    salt = cache_salt(token_url, client_id, certificate_fingerprint)
    if not client_secret:
        raise ValueError("token_url, client_id and client_secret must not be empty.")
    name = verifier_file_key(salt)
    check = secret_check(private_key_digest, salt, client_secret)
    try:
        verifier = _verifier_in(store.load_private(name), check)
    except (OSError, ConfigurationError) as exc:  # an unusable directory: the token cache warns of it
        log.debug("The kept cache key verifier cannot be read: %s", type(exc).__name__)
        verifier = None
    if verifier is not None:
        return key_of_verifier(salt, verifier)
    verifier = secret_verifier(client_secret, salt)
    record = {"format": RECORD_FORMAT, "verifier": verifier.hex(), "check": check.hex()}
    try:
        store.save_private(name, json.dumps(record, separators=(",", ":")).encode("ascii"))
    except (OSError, ConfigurationError) as exc:
        log.debug("The cache key verifier cannot be kept: %s", type(exc).__name__)
    return key_of_verifier(salt, verifier)

"""The ``ssl.SSLContext`` of a client identity, built without the plain private key touching disk.

``SSLContext.load_cert_chain`` only reads files. On Linux the chain and key go into anonymous
memory files (``memfd_create``) opened through ``/proc/self/fd``: no filesystem is touched.
Elsewhere they go into a private temporary directory (0700, files 0600) with the key re-encrypted
under a one-time random passphrase, deleted as soon as OpenSSL has read them. Either way nothing
is left behind, and the context keeps the key in memory only.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from ...errors import ClientIdentityError, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

# Names that show up in /proc/<pid>/fd while OpenSSL reads them; tests look for leaks by them.
MEMFD_PREFIX = "bankapi-identity-"

# What OpenSSL's refusals of a certificate or key mean, in words a user can act on.
_OPENSSL_REASONS = {
    "EE_KEY_TOO_SMALL": (
        "the key is too small for this system's OpenSSL security level (RSA keys need 2048 bits or more)"
    ),
    "CA_MD_TOO_SMALL": "the certificate is signed with a weak hash (SHA-1 or MD5) that OpenSSL refuses",
    "KEY_VALUES_MISMATCH": "the private key does not match the certificate",
}


def build_ssl_context(
    *,
    chain: Sequence[x509.Certificate],
    private_key: PrivateKeyTypes,
    ca_pem: str | None,
    identity_field: str,
) -> ssl.SSLContext:
    """A TLS client context (TLS >= 1.2, server verified) that presents ``chain`` with ``private_key``.

    :param chain: the client certificate first, then its intermediates.
    :param private_key: the client certificate's private key.
    :param ca_pem: the CA certificates to trust, as PEM text; None trusts OpenSSL's default store
        (the system's, or what the ``SSL_CERT_FILE``/``SSL_CERT_DIR`` variables name).
    :param identity_field: the connection extra the identity came from, for errors.
    :raises ClientIdentityError: when OpenSSL refuses the certificate or key.
    :raises ConfigurationError: when OpenSSL refuses the CA bundle.
    """
    if ca_pem is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # Only the configured CA: the bank's environments each have their own chain, and the
        # system store must not vouch for a server the connection was not configured to trust.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            # cadata must be str: bytes are read as DER, and PEM read as DER fails.
            context.load_verify_locations(cadata=ca_pem)
        except ssl.SSLError as exc:
            raise ConfigurationError(
                f"OpenSSL refuses the CA bundle in ca_cert ({exc.reason or 'unknown reason'}).",
                field="ca_cert",
                hint=(
                    "Set ca_cert to the PEM certificate(s) of the CA that signs the bank's server "
                    "certificate."
                ),
            ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    # A TLS 1.3 server may ask for the client certificate after the handshake.
    context.post_handshake_auth = True
    chain_pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
    try:
        _load_chain(context, chain_pem, private_key)
    except ssl.SSLError as exc:
        reason = _OPENSSL_REASONS.get(exc.reason or "", f"OpenSSL error {exc.reason or 'unknown'}")
        raise ClientIdentityError(
            f"OpenSSL refuses the client certificate or key in {identity_field}: {reason}.",
            field=identity_field,
            hint="Ask the bank's back office (CORE) for a certificate that meets current TLS requirements.",
        ) from exc
    return context


def memfd_available() -> bool:
    """Whether anonymous memory files can stand in for the files ``load_cert_chain`` wants."""
    return hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def _load_chain(context: ssl.SSLContext, chain_pem: bytes, private_key: PrivateKeyTypes) -> None:
    if memfd_available():
        try:
            _load_via_memfd(context, chain_pem, private_key)
            return
        except ssl.SSLError:
            raise
        except OSError:
            # memfd_create refused (seccomp, old kernel) or /proc not readable: fall back below.
            pass
    _load_via_private_directory(context, chain_pem, private_key)


def _load_via_memfd(context: ssl.SSLContext, chain_pem: bytes, private_key: PrivateKeyTypes) -> None:
    # The key stays unencrypted here: a memfd lives in memory, like the key itself.
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptors: list[int] = []
    try:
        for name, data in (("chain", chain_pem), ("key", key_pem)):
            descriptor = os.memfd_create(MEMFD_PREFIX + name, os.MFD_CLOEXEC)
            descriptors.append(descriptor)
            _write_all(descriptor, data)
        chain_path, key_path = (f"/proc/self/fd/{descriptor}" for descriptor in descriptors)
        context.load_cert_chain(chain_path, key_path)
    finally:
        for descriptor in descriptors:
            os.close(descriptor)


def _load_via_private_directory(
    context: ssl.SSLContext, chain_pem: bytes, private_key: PrivateKeyTypes
) -> None:
    # The key file is encrypted under a passphrase that only ever exists in this frame, so even
    # a crash between write and delete leaves nothing usable on disk.
    passphrase = secrets.token_urlsafe(32)
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode("ascii")),
    )
    # mkdtemp creates the directory 0700.
    with tempfile.TemporaryDirectory(prefix=MEMFD_PREFIX) as directory:
        chain_path = os.path.join(directory, "chain.pem")
        key_path = os.path.join(directory, "key.pem")
        _write_private(chain_path, chain_pem)
        _write_private(key_path, key_pem)
        context.load_cert_chain(chain_path, key_path, password=passphrase)


def _write_private(path: str, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _write_all(descriptor, data)
    finally:
        os.close(descriptor)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]

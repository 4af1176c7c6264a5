"""The client identity: certificate + key (PEM or PKCS#12) -> validated identity -> ``ssl.SSLContext``.

The bank issues a token, and answers a protected call, only over mutual TLS with a certificate
bound to the credential (docs/bank-contract.md). Everything that can be wrong with that certificate
locally is found here, before any network call, and reported as a
:class:`~airflow_provider_bankapi.errors.ClientIdentityError` naming the connection extra to fix
(a problem with ``ca_cert`` is a :class:`~airflow_provider_bankapi.errors.ConfigurationError`).
Through ``ssl`` alone the same mistakes surface as an opaque ``[SSL] PEM lib``.

::

    identity = load_identity(IdentityMaterial(client_cert="/secrets/client.crt",
                                              client_private_key="/secrets/client.key",
                                              ca_cert="/secrets/bank-ca.crt"))
    identity.describe()       # subject, validity, days left, SHA-256 fingerprint
    identity.ssl_context()    # the same SSLContext every time, for the transport
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from ...errors import ClientIdentityError, ConfigurationError
from ..fields import DEFAULT_EXPIRY_WARNING_DAYS
from .keypair import KeyPair, pem_pair, pkcs12_pair, split_blocks
from .material import IdentityMaterial, MaterialValue, password_bytes, read_field
from .tls import build_ssl_context

if TYPE_CHECKING:
    import ssl

    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

logger = logging.getLogger(__name__)

_CLIENT_AUTH_USAGES = (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)
_ROTATE_HINT = (
    "Issue a new certificate in the bank's back office (CORE) and bind it to the credential; a credential "
    "holds up to two certificates, so the old one keeps working until the switch."
)


@dataclass(frozen=True)
class CertificateDescription:
    """What a person needs to recognise a client certificate (all dates are aware, in UTC).

    :param serial_number: the serial number in lowercase hex.
    :param days_left: whole days until ``not_valid_after`` (negative once expired).
    :param fingerprint_sha256: lowercase hex SHA-256 over the DER, the thumbprint tokens are bound to.
    :param client_auth: whether the certificate may be used for TLS client authentication.
    """

    subject: str
    issuer: str
    serial_number: str
    not_valid_before: datetime.datetime
    not_valid_after: datetime.datetime
    days_left: int
    fingerprint_sha256: str
    client_auth: bool


class ClientIdentity:
    """A validated client certificate with its chain, and the ``SSLContext`` that presents it.

    Made by :func:`load_identity`. It holds no private key of its own: the key lives only inside
    the SSLContext, which cannot be pickled (a deferred trigger rebuilds the identity from the
    connection id).
    """

    __slots__ = (
        "_ca_certificates",
        "_chain",
        "_context",
        "_fingerprint",
        "_private_key_digest",
        "_source_field",
        "_warnings",
    )

    def __init__(
        self,
        *,
        chain: tuple[x509.Certificate, ...],
        context: ssl.SSLContext,
        ca_certificates: tuple[x509.Certificate, ...],
        warnings: tuple[str, ...],
        source_field: str,
        private_key_digest: bytes = b"",
    ) -> None:
        self._chain = chain
        self._private_key_digest = private_key_digest
        self._context = context
        self._ca_certificates = ca_certificates
        self._warnings = warnings
        self._source_field = source_field
        self._fingerprint = chain[0].fingerprint(hashes.SHA256()).hex()

    @property
    def certificate(self) -> x509.Certificate:
        """The client (leaf) certificate."""
        return self._chain[0]

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The client certificate first, then its intermediates, as sent in the handshake."""
        return self._chain

    @property
    def fingerprint_sha256(self) -> str:
        """Lowercase hex SHA-256 over the client certificate's DER (RFC 8705 thumbprint)."""
        return self._fingerprint

    @property
    def private_key_digest(self) -> bytes:
        """A SHA-256 of the private key (domain-separated), as secret as the key itself: it keys the check
        of the cache key's kept verifier. Never shown by ``repr``; empty when unknown.
        """
        return self._private_key_digest

    @property
    def warnings(self) -> tuple[str, ...]:
        """Problems that do not stop the identity from working yet (also logged when loaded)."""
        return self._warnings

    @property
    def ca_certificates(self) -> tuple[x509.Certificate, ...]:
        """The CA certificates trusted for the bank's server; empty means OpenSSL's default trust store
        (the system's, or what ``SSL_CERT_FILE``/``SSL_CERT_DIR`` name).
        """
        return self._ca_certificates

    @property
    def source_field(self) -> str:
        """The connection extra the certificate came from (``client_cert`` or ``client_pfx_secret``)."""
        return self._source_field

    def describe(self, now: datetime.datetime | None = None) -> CertificateDescription:
        """Subject, issuer, serial, validity, days left, fingerprint and clientAuth of the certificate.

        :param now: the moment ``days_left`` counts from (default: now; a naive value is UTC).
        """
        certificate = self.certificate
        return CertificateDescription(
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            serial_number=format(certificate.serial_number, "x"),
            not_valid_before=certificate.not_valid_before_utc,
            not_valid_after=certificate.not_valid_after_utc,
            days_left=(certificate.not_valid_after_utc - _utc(now)).days,
            fingerprint_sha256=self._fingerprint,
            client_auth=allows_client_auth(certificate),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS client context: TLS >= 1.2, server verified against ``ca_cert`` only (else the
        system's store), host name checked, this certificate and chain presented.

        Built once, when the identity was loaded; every call returns the same object, so a
        transport can key its connection pool on it. Callers must not load more CAs into it.
        """
        return self._context

    def __repr__(self) -> str:
        return (
            f"ClientIdentity(subject={self.certificate.subject.rfc4514_string()!r}, "
            f"fingerprint_sha256={self._fingerprint!r}, "
            f"not_valid_after={self.certificate.not_valid_after_utc.isoformat()!r})"
        )


def load_identity(
    material: IdentityMaterial,
    *,
    expiry_warning_days: int = DEFAULT_EXPIRY_WARNING_DAYS,
    now: datetime.datetime | None = None,
) -> ClientIdentity:
    """Read, check and load a client identity; no network call is made.

    :param material: the connection's identity extras.
    :param expiry_warning_days: warn when the certificate expires within this many days.
    :param now: the moment validity is judged at (default: now; a naive value is UTC).
    :raises ClientIdentityError: when the certificate, key or PKCS#12 cannot serve; ``field`` names
        the connection extra to fix and ``hint`` says how.
    :raises ConfigurationError: when ``ca_cert`` is unusable (``field="ca_cert"``).
    """
    if expiry_warning_days < 0:
        raise ValueError("expiry_warning_days must be zero or more")
    moment = _utc(now)
    pair = _key_pair(material)  # the material's fields were checked when it was made
    chain = _chain(pair)
    warnings = [*pair.warnings, *_validity(chain, pair.cert_field, moment, expiry_warning_days)]
    ca_certificates: tuple[x509.Certificate, ...] = ()
    if material.ca_cert is not None:
        ca_certificates = _ca_certificates(material.ca_cert)
        warnings.extend(_ca_warnings(ca_certificates, chain[0], moment))
    context = build_ssl_context(
        chain=chain,
        private_key=pair.private_key,
        ca_pem=_pem_text(ca_certificates) if ca_certificates else None,
        identity_field=pair.cert_field,
    )
    for warning in warnings:
        logger.warning(warning)
    return ClientIdentity(
        chain=chain,
        context=context,
        ca_certificates=ca_certificates,
        warnings=tuple(warnings),
        source_field=pair.cert_field,
        private_key_digest=private_key_digest(pair.private_key),
    )


def private_key_digest(private_key: PrivateKeyTypes) -> bytes:
    """SHA-256 of a private key's unencrypted PKCS#8 DER, with a label of its own (it is no fingerprint)."""
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"airflow-provider-bankapi/private-key-digest/1")
    digest.update(der)
    return digest.finalize()


def _key_pair(material: IdentityMaterial) -> KeyPair:
    pem = material.client_cert is not None or material.client_private_key is not None
    pfx = material.client_pfx_secret is not None
    if pem and pfx:
        raise ClientIdentityError(
            "Both a PEM pair (client_cert/client_private_key) and a PKCS#12 bundle (client_pfx_secret) "
            "are set.",
            field="client_pfx_secret",
            hint=(
                "Keep one: remove client_pfx_secret and client_pfx_password to use the PEM pair, or remove "
                "client_cert, client_private_key and client_private_key_password to use the PKCS#12."
            ),
        )
    if pfx and material.client_private_key_password is not None:
        raise ClientIdentityError(
            "client_private_key_password is set, but the identity is the PKCS#12 in client_pfx_secret.",
            field="client_private_key_password",
            hint="Remove client_private_key_password; the PKCS#12 password goes in client_pfx_password.",
        )
    if not pfx and material.client_pfx_password is not None:
        raise ClientIdentityError(
            "client_pfx_password is set, but client_pfx_secret is not.",
            field="client_pfx_password",
            hint=(
                "Set client_pfx_secret to the PKCS#12 bundle, or remove client_pfx_password (a PEM key's "
                "passphrase goes in client_private_key_password)."
            ),
        )
    if material.client_pfx_secret is not None:
        return pkcs12_pair(material.client_pfx_secret, password_bytes(material.client_pfx_password))
    if not pem:
        raise ClientIdentityError(
            "No client certificate is configured: the Banking API only accepts mutual TLS.",
            field="client_cert",
            hint="Set client_cert and client_private_key (PEM text or file paths), or client_pfx_secret.",
        )
    return pem_pair(
        material.client_cert,
        material.client_private_key,
        password_bytes(material.client_private_key_password),
    )


def _public_key_der(key: PrivateKeyTypes | x509.Certificate) -> bytes:
    public = key.public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _chain(pair: KeyPair) -> tuple[x509.Certificate, ...]:
    """The certificate whose public key is the key's, then its issuers in order, then the rest."""
    key_der = _public_key_der(pair.private_key)
    try:
        leaf = next(cert for cert in pair.certificates if _public_key_der(cert) == key_der)
    except StopIteration:
        several = len(pair.certificates) > 1
        raise ClientIdentityError(
            f"The private key in {pair.key_field} does not match "
            + (f"any of the {len(pair.certificates)} certificates" if several else "the certificate")
            + f" in {pair.cert_field} (their public keys differ).",
            field=pair.key_field,
            hint=(
                "Use the key that was generated with this certificate's request. A renewed certificate "
                "may come with a new key: update both fields together."
            ),
        ) from None
    chain = [leaf]
    rest = [cert for cert in pair.certificates if cert is not leaf]
    while True:
        issuer = next((cert for cert in rest if cert.subject == chain[-1].issuer), None)
        if issuer is None or chain[-1].subject == chain[-1].issuer:
            break
        chain.append(issuer)
        rest.remove(issuer)
    return tuple(chain + rest)


def _validity(
    chain: tuple[x509.Certificate, ...], name: str, now: datetime.datetime, warning_days: int
) -> list[str]:
    leaf = chain[0]
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < start:
        raise ClientIdentityError(
            f"The client certificate in {name} is not valid yet: it is valid from {_when(start)}.",
            field=name,
            hint="Check this machine's clock, or wait until then; the bank refuses it before that date.",
        )
    if now >= end:
        raise ClientIdentityError(
            f"The client certificate in {name} expired on {_when(end)}.",
            field=name,
            hint=_ROTATE_HINT + f" Then update {name}.",
        )
    warnings = []
    days = (end - now).days
    if end - now <= datetime.timedelta(days=warning_days):
        warnings.append(
            f"The client certificate in {name} expires in {days} day{'s' if days != 1 else ''}, on "
            f"{_when(end)}. {_ROTATE_HINT}"
        )
    if not allows_client_auth(leaf):
        warnings.append(
            f"The client certificate in {name} has an extended key usage without clientAuth: the bank may "
            "refuse it in the TLS handshake. Ask CORE for a certificate with the TLS client authentication "
            "usage."
        )
    for intermediate in chain[1:]:
        if intermediate.not_valid_after_utc <= now:
            warnings.append(
                f"The certificate {intermediate.subject.rfc4514_string()} in {name} expired on "
                f"{_when(intermediate.not_valid_after_utc)}: the bank may refuse the chain."
            )
    return warnings


def allows_client_auth(certificate: x509.Certificate) -> bool:
    """Whether the certificate may authenticate a TLS client: no extended key usage, or one that allows it.

    :param certificate: the certificate to check.
    """
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    except ValueError:  # malformed extensions: leave the verdict to the server
        return True
    return any(oid in usage for oid in _CLIENT_AUTH_USAGES)


def _ca_certificates(value: MaterialValue) -> tuple[x509.Certificate, ...]:
    try:
        content = read_field("ca_cert", value)
        certificates, keys = split_blocks(content)
    except ClientIdentityError as exc:
        # The server's CA is configuration, not the client identity.
        raise ConfigurationError(exc.message, field="ca_cert", hint=exc.hint) from exc
    if keys:
        raise ConfigurationError(
            f"{content.where.capitalize()} holds a private key.",
            field="ca_cert",
            hint=(
                "ca_cert must hold only the certificate(s) of the CA that signs the bank's server "
                "certificate. "
                "Remove the key: ca_cert is not masked in Airflow's UI and logs."
            ),
        )
    if not certificates:
        raise ConfigurationError(
            f"{content.where.capitalize()} holds no certificate.",
            field="ca_cert",
            hint="Set ca_cert to the PEM certificate(s) of the CA that signs the bank's server certificate.",
        )
    # A certificate pasted twice adds nothing but the trust store's loading time.
    return tuple(dict.fromkeys(certificates))


def _ca_warnings(
    certificates: tuple[x509.Certificate, ...], leaf: x509.Certificate, now: datetime.datetime
) -> list[str]:
    warnings = []
    expired = [cert for cert in certificates if cert.not_valid_after_utc <= now]
    if expired:
        warnings.append(
            f"{len(expired)} of the {len(certificates)} CA certificates in ca_cert expired (first: "
            f"{expired[0].subject.rfc4514_string()}, on {_when(expired[0].not_valid_after_utc)}); the bank's "
            "server cannot be verified through them."
        )
    if any(cert == leaf for cert in certificates):
        warnings.append(
            "ca_cert holds the client certificate itself; it should hold the CA that signs the bank's "
            "server certificate."
        )
    return warnings


def _pem_text(certificates: tuple[x509.Certificate, ...]) -> str:
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in certificates)


def _utc(moment: datetime.datetime | None) -> datetime.datetime:
    if moment is None:
        return datetime.datetime.now(datetime.timezone.utc)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")

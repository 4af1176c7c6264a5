"""A small certificate authority for the sandbox and for tests: every key is made at run time.

The bank's CORE issues client certificates from its own chain; here a throwaway CA plays that
part, so no private key is ever committed.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    private_key: PrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self, password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def pkcs12(self, password: bytes | None, *, ca: Issued | None = None, name: bytes = b"client") -> bytes:
        """The identity as a PKCS#12 (``.pfx``) bundle, with the CA certificate when given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        extra = [ca.certificate] if ca else None
        return pkcs12.serialize_key_and_certificates(
            name, self.private_key, self.certificate, extra, encryption
        )

    @property
    def fingerprint_sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()


def new_private_key(key_type: KeyType = "ec") -> PrivateKey:
    # EC P-256 by default: RSA-2048 generation costs ~50 ms a key, which adds up in a test suite.
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Banking API sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def make_ca(
    common_name: str = "Banking API sandbox CA",
    *,
    days: int = 3650,
    key_type: KeyType = "ec",
    issuer: Issued | None = None,
) -> Issued:
    """A CA able to sign server and client certificates: self-signed (a root), or an intermediate
    signed by ``issuer`` (path length 0: it signs leaves only).
    """
    key = new_private_key(key_type)
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name) if issuer is None else issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is None:
        return Issued(builder.sign(key, hashes.SHA256()), key)
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key())
    certificate = builder.add_extension(authority, critical=False).sign(issuer.private_key, hashes.SHA256())
    return Issued(certificate, key)


def _leaf(
    ca: Issued,
    common_name: str,
    *,
    usages: list[x509.ObjectIdentifier],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    key_type: KeyType,
    san: list[x509.GeneralName] | None = None,
) -> Issued:
    key = new_private_key(key_type)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()), critical=False
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return Issued(builder.sign(ca.private_key, hashes.SHA256()), key)


def issue_server_certificate(
    ca: Issued,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    *,
    days: int = 825,
    key_type: KeyType = "ec",
) -> Issued:
    """A TLS server certificate for the given DNS names and IP addresses."""
    san: list[x509.GeneralName] = []
    for host in hosts:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            san.append(x509.DNSName(host))
    now = _now()
    return _leaf(
        ca,
        hosts[0],
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        not_before=now - datetime.timedelta(minutes=5),
        not_after=now + datetime.timedelta(days=days),
        key_type=key_type,
        san=san,
    )


def issue_client_certificate(
    ca: Issued,
    common_name: str = "sandbox-client",
    *,
    days: float = 365,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    client_auth: bool = True,
    key_type: KeyType = "ec",
) -> Issued:
    """A client certificate (clientAuth usage unless ``client_auth`` is False).

    ``not_before``/``not_after`` override the validity, to make expired or not-yet-valid certificates.
    """
    now = _now()
    start = not_before or now - datetime.timedelta(minutes=5)
    end = not_after or now + datetime.timedelta(days=days)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [ExtendedKeyUsageOID.CODE_SIGNING]
    return _leaf(ca, common_name, usages=usages, not_before=start, not_after=end, key_type=key_type)


def write_private(path: Path, data: bytes) -> Path:
    """Write a file readable by its owner only (0600), created with that mode, never widened."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


def write_public(path: Path, data: bytes) -> Path:
    """Write a certificate (public material, 0644)."""
    path = Path(path)
    path.write_bytes(data)
    path.chmod(0o644)
    return path

"""The client certificate(s) and private key out of a PEM pair or a PKCS#12 bundle.

Every failure names the connection extra to fix and says how, and tells apart the mistakes people
actually make: a certificate pasted as the key (and the reverse), a wrong, missing or superfluous
passphrase, a PKCS#12 that has no password, PEM put where the PKCS#12 belongs. cryptography gives
the same ``ValueError`` for a wrong PKCS#12 password and a damaged file, so a quick look at the
DER header first tells "not a PKCS#12 at all" apart from those.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning

from ...errors import ClientIdentityError
from .material import FieldContent, MaterialValue, PemBlock, decode_base64, pem_blocks, read_field

CERTIFICATE_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE"})
KEY_LABELS = frozenset(
    {"PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY"}
)
_CSR_LABELS = frozenset({"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"})
# Keys that can sign a TLS handshake (X25519, DH... cannot).
_SIGNING_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)
_PFX = "client_pfx_secret"
_PFX_PASSWORD = "client_pfx_password"
_KEY_PASSWORD = "client_private_key_password"


@dataclass(frozen=True)
class KeyPair:
    """A private key and the certificates that came with it (leaf not necessarily first).

    :param cert_field: the connection extra the certificates came from.
    :param key_field: the connection extra the key came from.
    """

    private_key: PrivateKeyTypes = field(repr=False)
    certificates: tuple[x509.Certificate, ...]
    cert_field: str
    key_field: str
    warnings: tuple[str, ...] = ()


def _error(message: str, name: str, hint: str) -> ClientIdentityError:
    return ClientIdentityError(message, field=name, hint=hint)


def split_blocks(content: FieldContent) -> tuple[list[x509.Certificate], list[PemBlock]]:
    """The certificates and the private-key blocks in a field; anything else is an error.

    :param content: a field as read by :func:`.material.read_field`.
    """
    certificates: list[x509.Certificate] = []
    keys: list[PemBlock] = []
    for block in pem_blocks(content):
        if block.label in CERTIFICATE_LABELS or (block.label == "DER" and _is_certificate(block.der)):
            certificates.append(_certificate(content, block.der))
        elif block.label in KEY_LABELS or (block.label == "DER" and _is_private_key(block.der)):
            keys.append(block)
        elif block.label == "DER":
            raise _error(
                f"{content.where.capitalize()} is neither PEM nor a DER certificate or key.",
                content.name,
                f"Set {content.name} to PEM text (with its -----BEGIN/-----END lines) or to the path of a "
                "PEM or DER file.",
            )
        elif block.label in _CSR_LABELS:
            raise _error(
                f"{content.where.capitalize()} is a certificate signing request (CSR), not a certificate.",
                content.name,
                "Use the certificate the bank's back office (CORE) issued from that request.",
            )
        else:
            raise _error(
                f"{content.where.capitalize()} holds a '{block.label}' PEM block, which is neither a "
                "certificate nor a private key this provider can use.",
                content.name,
                "Use -----BEGIN CERTIFICATE----- blocks for certificates and a -----BEGIN PRIVATE KEY----- "
                "(or RSA/EC/ENCRYPTED PRIVATE KEY) block for the key.",
            )
    return certificates, keys


def _is_certificate(der: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(der)
    except ValueError:
        return False
    return True


def _is_private_key(der: bytes) -> bool:
    try:
        serialization.load_der_private_key(der, None)
    except TypeError:
        return True  # an encrypted key asking for its passphrase: a key all the same
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _certificate(content: FieldContent, der: bytes) -> x509.Certificate:
    try:
        with warnings.catch_warnings():
            # cryptography only warns (and will refuse in a later release) on a certificate RFC 5280
            # forbids, such as one whose serial number is not positive: refused here already.
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            return x509.load_der_x509_certificate(der)
    except (ValueError, CryptographyDeprecationWarning) as exc:
        raise _error(
            f"Malformed certificate in {content.where}: a CERTIFICATE block holds no valid X.509 "
            "certificate.",
            content.name,
            f"Copy the certificate into {content.name} again, unchanged.",
        ) from exc


def pem_pair(
    cert_value: MaterialValue | None, key_value: MaterialValue | None, password: bytes | None
) -> KeyPair:
    """Read the client certificate and key from ``client_cert`` and ``client_private_key``.

    A certificate file that also holds the key (or a key file that also holds the certificate) is
    accepted when the other field is empty. Key text in ``client_cert`` is refused: that extra is
    not masked by Airflow.
    """
    cert_content = read_field("client_cert", cert_value) if cert_value is not None else None
    key_content = read_field("client_private_key", key_value) if key_value is not None else None
    certificates, cert_keys = split_blocks(cert_content) if cert_content else ([], [])
    key_certificates, keys = split_blocks(key_content) if key_content else ([], [])
    if cert_content is not None:
        _check_certificate_field(cert_content, certificates, cert_keys)
    if key_content is not None and not keys:
        if key_certificates:
            raise _error(
                f"{key_content.where.capitalize()} is a certificate, not a private key.",
                "client_private_key",
                "Put the certificate in client_cert, and the private key (-----BEGIN PRIVATE KEY-----, or "
                "RSA/EC/ENCRYPTED PRIVATE KEY) in client_private_key.",
            )
        raise _error(
            f"{key_content.where.capitalize()} holds no private key.",
            "client_private_key",
            "Set client_private_key to the private key of the client certificate, PEM text or a file path.",
        )
    if key_content is None:
        if not cert_keys:
            raise _error(
                "client_cert is set but client_private_key is not: TLS needs the certificate's private key.",
                "client_private_key",
                "Set client_private_key to the key of the client certificate (PEM text or a path), or use "
                "client_pfx_secret with a PKCS#12 bundle instead.",
            )
        key_content, keys = cert_content, cert_keys
    if cert_content is None:
        if not key_certificates:
            raise _error(
                "client_private_key is set but client_cert is not: TLS needs the client certificate too.",
                "client_cert",
                "Set client_cert to the client certificate (PEM text or a path) issued in the bank's CORE.",
            )
        cert_content, certificates = key_content, key_certificates
    # Both narrowed above; for mypy.
    assert key_content is not None
    assert cert_content is not None
    if len(keys) > 1:
        raise _error(
            f"{key_content.where.capitalize()} holds {len(keys)} private keys; only one can be used.",
            key_content.name,
            "Keep only the private key of the client certificate.",
        )
    private_key, warnings = _private_key(key_content, keys[0], password)
    return KeyPair(private_key, tuple(certificates), cert_content.name, key_content.name, warnings)


def _check_certificate_field(
    content: FieldContent, certificates: list[x509.Certificate], keys: list[PemBlock]
) -> None:
    if keys and not certificates:
        raise _error(
            f"{content.where.capitalize()} is a private key, not a certificate.",
            "client_cert",
            "Put the certificate (-----BEGIN CERTIFICATE-----) in client_cert and the private key in "
            "client_private_key.",
        )
    if keys and not content.from_file:
        raise _error(
            "The text in client_cert holds a private key besides the certificate.",
            "client_cert",
            "Move the private key block to client_private_key: client_cert is not masked in Airflow's UI "
            "and logs, client_private_key is.",
        )
    if not certificates:
        raise _error(
            f"{content.where.capitalize()} holds no certificate.",
            "client_cert",
            "Set client_cert to the PEM certificate (-----BEGIN CERTIFICATE-----) issued in the bank's CORE.",
        )


def _private_key(
    content: FieldContent, block: PemBlock, password: bytes | None
) -> tuple[PrivateKeyTypes, tuple[str, ...]]:
    try:
        return _check_signing_key(content, _load_key(block, password)), ()
    except TypeError as exc:
        if password is None:
            raise _error(
                f"The private key in {content.where} is encrypted and client_private_key_password is "
                "not set.",
                _KEY_PASSWORD,
                "Set client_private_key_password to the key's passphrase.",
            ) from exc
        raise _error(
            f"client_private_key_password is set, but the private key in {content.where} is not encrypted.",
            _KEY_PASSWORD,
            "Remove client_private_key_password.",
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        if password is not None and password.strip() != password:
            try:
                key = _check_signing_key(content, _load_key(block, password.strip()))
            except (TypeError, ValueError, UnsupportedAlgorithm):
                pass
            else:
                return key, (
                    "client_private_key_password has leading or trailing whitespace, which was ignored; "
                    "remove it from the connection.",
                )
        if password is not None and _encrypted(block):
            raise _error(
                f"client_private_key_password does not decrypt the private key in {content.where}.",
                _KEY_PASSWORD,
                "Check the passphrase (it is case-sensitive), or that client_private_key is the key it "
                "belongs to.",
            ) from exc
        raise _error(
            f"The private key in {content.where} cannot be read: it is damaged or of an unsupported type.",
            "client_private_key",
            "Copy the key into client_private_key again, unchanged, as PEM (PKCS#8, RSA or EC).",
        ) from exc


def _load_key(block: PemBlock, password: bytes | None) -> PrivateKeyTypes:
    if block.label == "DER":
        return serialization.load_der_private_key(block.der, password)
    return serialization.load_pem_private_key(block.text.encode("ascii"), password)


def _encrypted(block: PemBlock) -> bool:
    return block.label in ("ENCRYPTED PRIVATE KEY", "DER") or "Proc-Type: 4,ENCRYPTED" in block.text


def _check_signing_key(content: FieldContent, key: PrivateKeyTypes) -> PrivateKeyTypes:
    if not isinstance(key, _SIGNING_KEYS):
        raise _error(
            f"The private key in {content.where} is a {type(key).__name__}, which cannot sign a TLS "
            "handshake.",
            content.name,
            "Use the RSA or EC private key of the client certificate.",
        )
    return key


def pkcs12_pair(value: MaterialValue, password: bytes | None) -> KeyPair:
    """Read the client certificate and key from the PKCS#12 bundle in ``client_pfx_secret``."""
    content = read_field(_PFX, value, base64_text=True)
    data = content.data
    if b"-----BEGIN" in data:
        raise _error(
            f"{content.where.capitalize()} is PEM text, not a PKCS#12 (.pfx) bundle.",
            _PFX,
            "Put the PEM certificate in client_cert and the key in client_private_key (and clear "
            "client_pfx_secret), or set client_pfx_secret to the .pfx file's path or its base64.",
        )
    shape = _pkcs12_shape(data)
    if shape == "other" and content.from_file:
        # A .pfx saved as base64 text (base64 client.pfx > client.pfx.b64).
        decoded = decode_base64(data.decode("ascii", "replace"))
        if decoded is not None and _pkcs12_shape(decoded) != "other":
            data, shape = decoded, _pkcs12_shape(decoded)
    if shape == "other":
        raise _error(
            f"{content.where.capitalize()} is not a PKCS#12 (.pfx/.p12) bundle.",
            _PFX,
            "Set client_pfx_secret to the .pfx file's path or to its content in base64 "
            "(base64 -w0 client.pfx).",
        )
    if shape == "truncated":
        raise _error(
            f"{content.where.capitalize()} is a truncated PKCS#12 bundle.",
            _PFX,
            "Copy the whole .pfx file (or its whole base64) into client_pfx_secret again.",
        )
    key, certificate, others, warnings = _open_pkcs12(content, data, password)
    if key is None:
        raise _error(
            f"The PKCS#12 bundle in {content.where} holds no private key.",
            _PFX,
            "Export the bundle again with the private key (openssl pkcs12 -export -inkey client.key ...).",
        )
    certificates = ([certificate] if certificate is not None else []) + others
    if not certificates:
        raise _error(
            f"The PKCS#12 bundle in {content.where} holds no certificate.",
            _PFX,
            "Export the bundle again with the client certificate "
            "(openssl pkcs12 -export -in client.crt ...).",
        )
    return KeyPair(_check_signing_key(content, key), tuple(certificates), _PFX, _PFX, warnings)


def _pkcs12_shape(data: bytes) -> str:
    """'pkcs12', 'truncated' or 'other', from the outer DER: SEQUENCE { INTEGER 3, ... } (RFC 7292)."""
    if len(data) < 8 or data[0] != 0x30:
        return "other"
    if data[1] == 0x80:  # BER indefinite length, as some Windows and Java exports write it
        offset, length = 2, None
    elif data[1] < 0x80:
        offset, length = 2, data[1]
    else:
        size = data[1] & 0x7F
        if not 1 <= size <= 4:
            return "other"
        offset, length = 2 + size, int.from_bytes(data[2 : 2 + size], "big")
    if data[offset : offset + 3] != b"\x02\x01\x03":
        return "other"
    if length is not None and offset + length > len(data):
        return "truncated"
    return "pkcs12"


_Pkcs12Contents = tuple[
    PrivateKeyTypes | None, x509.Certificate | None, list[x509.Certificate], tuple[str, ...]
]


def _open_pkcs12(content: FieldContent, data: bytes, password: bytes | None) -> _Pkcs12Contents:
    try:
        return (*pkcs12.load_key_and_certificates(data, password), ())
    except UnsupportedAlgorithm as exc:
        raise _error(
            f"The PKCS#12 bundle in {content.where} is encrypted with an algorithm this system cannot read "
            "(legacy RC2 or 3DES).",
            _PFX,
            "Export it again with AES: openssl pkcs12 -export -keypbe AES-256-CBC -certpbe AES-256-CBC ...",
        ) from exc
    except ValueError as exc:
        failure = exc
    if password is not None and password.strip() != password:
        opened = _try_pkcs12(data, password.strip())
        if opened is not None:
            note = "client_pfx_password has leading or trailing whitespace, which was ignored; remove it."
            return (*opened, (note,))
    # OpenSSL opens a bundle without a password (or with an empty one, the same to it) with None:
    # success means the password given is superfluous rather than wrong.
    if password is not None and _try_pkcs12(data, None) is not None:
        raise _error(
            f"The PKCS#12 bundle in {content.where} has no password, but client_pfx_password is set.",
            _PFX_PASSWORD,
            "Remove client_pfx_password.",
        ) from failure
    if password is None:
        raise _error(
            f"The PKCS#12 bundle in {content.where} is protected by a password and client_pfx_password is "
            "not set (or the file is damaged).",
            _PFX_PASSWORD,
            "Set client_pfx_password to the bundle's password.",
        ) from failure
    raise _error(
        f"client_pfx_password does not open the PKCS#12 bundle in {content.where}: wrong password, or a "
        "damaged file.",
        _PFX_PASSWORD,
        "Check the password (it is case-sensitive); if it is right, export the .pfx again.",
    ) from failure


def _try_pkcs12(
    data: bytes, password: bytes | None
) -> tuple[PrivateKeyTypes | None, x509.Certificate | None, list[x509.Certificate]] | None:
    try:
        return pkcs12.load_key_and_certificates(data, password)
    except (ValueError, UnsupportedAlgorithm):
        return None

"""Client identity: every local mistake ends in its named error, before any network call.

All PKI is made at test time (bankapi_sandbox.pki); nothing private is committed.
"""

from __future__ import annotations

import base64
import datetime
import logging
import os
import pickle
import socket
import ssl
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from airflow_provider_bankapi.client.identity import material
from airflow_provider_bankapi.client.identity import tls as tls_context
from airflow_provider_bankapi.client.identity.identity import (
    CertificateDescription,
    ClientIdentity,
    load_identity,
)
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.errors import ClientIdentityError, ConfigurationError
from bankapi_sandbox import pki

KEY_PASSWORD = "correct-horse-battery-staple-42"
WRONG_PASSWORD = "wrong-passphrase-9f3a77"
PFX_PASSWORD = "pfx-secret-password-Zq81"
UTC = datetime.timezone.utc


def pem(data: bytes) -> str:
    return data.decode("ascii")


def self_signed(key: Any, *, signing_key: Any = None, eku: bool = False) -> x509.Certificate:
    """A bare certificate for ``key`` (no extended key usage unless asked), signed by ``signing_key``."""
    now = datetime.datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    return builder.sign(signing_key or key, hashes.SHA256())


@dataclass
class Pki:
    ca: pki.Issued
    client: pki.Issued
    other: pki.Issued
    expired: pki.Issued
    not_yet: pki.Issued
    no_client_auth: pki.Issued
    rsa_client: pki.Issued
    files: Path

    @property
    def cert(self) -> str:
        return pem(self.client.certificate_pem())

    @property
    def key(self) -> str:
        return pem(self.client.private_key_pem())

    @property
    def encrypted_key(self) -> str:
        return pem(self.client.private_key_pem(KEY_PASSWORD.encode()))

    def pfx(self, password: str | None = PFX_PASSWORD, issued: pki.Issued | None = None) -> str:
        data = (issued or self.client).pkcs12(password.encode() if password else None, ca=self.ca)
        return base64.b64encode(data).decode("ascii")

    @property
    def ca_pem(self) -> str:
        return pem(self.ca.certificate_pem())


@pytest.fixture(scope="module")
def p(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = pki.make_ca()
    now = datetime.datetime.now(UTC)
    files = tmp_path_factory.mktemp("identity")
    client = pki.issue_client_certificate(ca)
    pki.write_public(files / "client.crt", client.certificate_pem())
    pki.write_private(files / "client.key", client.private_key_pem())
    pki.write_private(files / "client.pfx", client.pkcs12(PFX_PASSWORD.encode(), ca=ca))
    pki.write_public(files / "ca.crt", ca.certificate_pem())
    return Pki(
        ca=ca,
        client=client,
        other=pki.issue_client_certificate(ca, "someone-else"),
        expired=pki.issue_client_certificate(
            ca, not_before=now - datetime.timedelta(days=400), not_after=now - datetime.timedelta(days=1)
        ),
        not_yet=pki.issue_client_certificate(
            ca, not_before=now + datetime.timedelta(days=2), not_after=now + datetime.timedelta(days=300)
        ),
        no_client_auth=pki.issue_client_certificate(ca, client_auth=False),
        rsa_client=pki.issue_client_certificate(ca, key_type="rsa"),
        files=files,
    )


def pfx_without_key(p: Pki) -> str:
    data = pkcs12.serialize_key_and_certificates(
        b"x", None, p.client.certificate, None, serialization.BestAvailableEncryption(PFX_PASSWORD.encode())
    )
    return base64.b64encode(data).decode()


def pfx_key_only(p: Pki) -> str:
    data = pkcs12.serialize_key_and_certificates(
        b"x", p.client.private_key, None, None, serialization.BestAvailableEncryption(PFX_PASSWORD.encode())
    )
    return base64.b64encode(data).decode()


def pfx_foreign_certificate(p: Pki) -> str:
    # A key with someone else's certificate: cryptography refuses to pair them, so the certificate
    # rides along as an "additional" one.
    data = pkcs12.serialize_key_and_certificates(
        b"x",
        p.client.private_key,
        None,
        [p.other.certificate],
        serialization.BestAvailableEncryption(PFX_PASSWORD.encode()),
    )
    return base64.b64encode(data).decode()


def traditional_encrypted_key(p: Pki) -> str:
    return pem(
        p.rsa_client.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )


def rsa_1024(p: Pki) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    certificate = self_signed(key, signing_key=p.ca.private_key)
    return pem(certificate.public_bytes(serialization.Encoding.PEM)), pem(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def x25519_pair(p: Pki) -> tuple[str, str]:
    key = x25519.X25519PrivateKey.generate()
    certificate = self_signed(key, signing_key=p.ca.private_key)
    return pem(certificate.public_bytes(serialization.Encoding.PEM)), pem(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def truncated(text: str) -> str:
    return text[: len(text) // 2]


def damaged_base64(text: str) -> str:
    lines = text.splitlines()
    lines[2] = lines[2][:10] + "!" + lines[2][11:]
    return "\n".join(lines)


def csr(p: Pki) -> str:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr")]))
        .sign(p.client.private_key, hashes.SHA256())
    )
    return pem(request.public_bytes(serialization.Encoding.PEM))


def public_key(p: Pki) -> str:
    return pem(
        p.client.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


Case = Callable[[Pki], dict[str, Any]]

ERROR_CASES = [
    # Malformed input.
    pytest.param(
        lambda p: {"client_cert": truncated(p.cert), "client_private_key": p.key},
        "client_cert",
        "no matching -----END",
        id="pem-truncated",
    ),
    pytest.param(
        lambda p: {"client_cert": damaged_base64(p.cert), "client_private_key": p.key},
        "client_cert",
        "base64 inside the CERTIFICATE block is damaged",
        id="pem-damaged-base64",
    ),
    pytest.param(
        lambda p: {
            "client_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "client_private_key": p.key,
        },
        "client_cert",
        "holds no valid X.509 certificate",
        id="pem-not-a-certificate",
    ),
    pytest.param(
        lambda p: {"client_cert": p.cert, "client_private_key": damaged_base64(p.key)},
        "client_private_key",
        "is damaged",
        id="key-damaged-base64",
    ),
    pytest.param(
        lambda p: {
            "client_cert": p.cert,
            "client_private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        },
        "client_private_key",
        "cannot be read",
        id="key-not-a-key",
    ),
    pytest.param(
        lambda p: {"client_cert": "/no/such/dir/client.crt", "client_private_key": p.key},
        "client_cert",
        "names the file '/no/such/dir/client.crt', which does not exist",
        id="cert-missing-file",
    ),
    pytest.param(
        lambda p: {"client_cert": "client certificate goes here", "client_private_key": p.key},
        "client_cert",
        "neither PEM text",
        id="cert-neither-file-nor-pem",
    ),
    pytest.param(
        lambda p: {
            "client_cert": p.cert,
            "client_private_key": "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
        },
        "client_private_key",
        "neither PEM text",
        id="key-base64-without-armour",
    ),
    pytest.param(
        lambda p: {"client_cert": str(p.files), "client_private_key": p.key},
        "client_cert",
        "not a regular file",
        id="cert-is-a-directory",
    ),
    pytest.param(
        lambda p: {"client_cert": ["a", "b"], "client_private_key": p.key},
        "client_cert",
        "not list",
        id="cert-wrong-type",
    ),
    # Material in the wrong field.
    pytest.param(
        lambda p: {"client_cert": p.key, "client_private_key": p.key},
        "client_cert",
        "is a private key, not a certificate",
        id="key-pasted-as-certificate",
    ),
    pytest.param(
        lambda p: {"client_cert": p.cert, "client_private_key": p.cert},
        "client_private_key",
        "is a certificate, not a private key",
        id="certificate-pasted-as-key",
    ),
    pytest.param(
        lambda p: {"client_cert": p.cert + p.key, "client_private_key": p.key},
        "client_cert",
        "not masked",
        id="key-text-inside-client-cert",
    ),
    pytest.param(
        lambda p: {"client_cert": csr(p), "client_private_key": p.key},
        "client_cert",
        "certificate signing request",
        id="csr-as-certificate",
    ),
    pytest.param(
        lambda p: {"client_cert": p.cert, "client_private_key": public_key(p)},
        "client_private_key",
        "'PUBLIC KEY' PEM block",
        id="public-key-as-key",
    ),
    pytest.param(
        lambda p: {"client_cert": p.cert, "client_private_key": p.key + p.key},
        "client_private_key",
        "2 private keys",
        id="two-keys",
    ),
    # Passphrases.
    pytest.param(
        lambda p: {"client_cert": p.cert, "client_private_key": p.encrypted_key},
        "client_private_key_password",
        "is encrypted and client_private_key_password is not set",
        id="passphrase-missing",
    ),
    pytest.param(
        lambda p: {
            "client_cert": p.cert,
            "client_private_key": p.encrypted_key,
            "client_private_key_password": WRONG_PASSWORD,
        },
        "client_private_key_password",
        "does not decrypt",
        id="passphrase-wrong",
    ),
    pytest.param(
        lambda p: {
            "client_cert": pem(p.rsa_client.certificate_pem()),
            "client_private_key": traditional_encrypted_key(p),
            "client_private_key_password": WRONG_PASSWORD,
        },
        "client_private_key_password",
        "does not decrypt",
        id="passphrase-wrong-traditional-rsa",
    ),
    pytest.param(
        lambda p: {
            "client_cert": p.cert,
            "client_private_key": p.key,
            "client_private_key_password": KEY_PASSWORD,
        },
        "client_private_key_password",
        "is not encrypted",
        id="passphrase-for-plain-key",
    ),
    # PKCS#12.
    pytest.param(
        lambda p: {"client_pfx_secret": p.pfx(), "client_pfx_password": WRONG_PASSWORD},
        "client_pfx_password",
        "wrong password",
        id="pfx-wrong-password",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": p.pfx()},
        "client_pfx_password",
        "protected by a password",
        id="pfx-password-missing",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": p.pfx(None), "client_pfx_password": PFX_PASSWORD},
        "client_pfx_password",
        "has no password",
        id="pfx-has-no-password",
    ),
    pytest.param(
        lambda p: {
            "client_pfx_secret": base64.b64encode(os.urandom(300)).decode(),
            "client_pfx_password": "x",
        },
        "client_pfx_secret",
        "not a PKCS#12",
        id="pfx-not-pkcs12",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": p.cert + p.key, "client_pfx_password": WRONG_PASSWORD},
        "client_pfx_secret",
        "is PEM text, not a PKCS#12",
        id="pfx-pem-pasted",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": base64.b64encode(base64.b64decode(p.pfx())[:700]).decode()},
        "client_pfx_secret",
        "truncated",
        id="pfx-truncated",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": "not base64 at all!", "client_pfx_password": PFX_PASSWORD},
        "client_pfx_secret",
        "neither the path of a readable file nor base64",
        id="pfx-neither-file-nor-base64",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": pfx_without_key(p), "client_pfx_password": PFX_PASSWORD},
        "client_pfx_secret",
        "holds no private key",
        id="pfx-without-key",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": pfx_key_only(p), "client_pfx_password": PFX_PASSWORD},
        "client_pfx_secret",
        "holds no certificate",
        id="pfx-without-certificate",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": pfx_foreign_certificate(p), "client_pfx_password": PFX_PASSWORD},
        "client_pfx_secret",
        "does not match",
        id="pfx-key-not-matching",
    ),
    # Combinations.
    pytest.param(
        lambda p: {"client_cert": p.cert, "client_private_key": p.key, "client_pfx_secret": p.pfx()},
        "client_pfx_secret",
        "remove client_pfx_secret and client_pfx_password to use the PEM pair",
        id="pem-and-pfx",
    ),
    pytest.param(
        lambda p: {"client_cert": p.cert},
        "client_private_key",
        "client_private_key is not",
        id="certificate-without-key",
    ),
    pytest.param(
        lambda p: {"client_private_key": p.key},
        "client_cert",
        "client_cert is not",
        id="key-without-certificate",
    ),
    pytest.param(lambda p: {}, "client_cert", "mutual TLS", id="nothing-configured"),
    pytest.param(
        lambda p: {"client_cert": "", "client_private_key": "  ", "ca_cert": p.ca_pem},
        "client_cert",
        "mutual TLS",
        id="empty-strings-are-unset",
    ),
    pytest.param(
        lambda p: {"client_cert": p.cert, "client_private_key": p.key, "client_pfx_password": PFX_PASSWORD},
        "client_pfx_password",
        "client_pfx_secret is not",
        id="pfx-password-without-pfx",
    ),
    pytest.param(
        lambda p: {
            "client_pfx_secret": p.pfx(),
            "client_pfx_password": PFX_PASSWORD,
            "client_private_key_password": "x",
        },
        "client_private_key_password",
        "goes in client_pfx_password",
        id="key-password-with-pfx",
    ),
    # Key and certificate.
    pytest.param(
        lambda p: {"client_cert": p.cert, "client_private_key": pem(p.other.private_key_pem())},
        "client_private_key",
        "does not match the certificate",
        id="key-not-matching",
    ),
    pytest.param(
        lambda p: {
            "client_cert": pem(p.other.certificate_pem()) + pem(p.ca.certificate_pem()),
            "client_private_key": p.key,
        },
        "client_private_key",
        "any of the 2 certificates",
        id="key-matching-no-certificate-of-a-bundle",
    ),
    pytest.param(
        lambda p: {
            "client_cert": pem(p.expired.certificate_pem()),
            "client_private_key": pem(p.expired.private_key_pem()),
        },
        "client_cert",
        "expired on",
        id="expired",
    ),
    pytest.param(
        lambda p: {
            "client_cert": pem(p.not_yet.certificate_pem()),
            "client_private_key": pem(p.not_yet.private_key_pem()),
        },
        "client_cert",
        "not valid yet",
        id="not-yet-valid",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": p.pfx(issued=p.expired), "client_pfx_password": PFX_PASSWORD},
        "client_pfx_secret",
        "expired on",
        id="expired-in-pfx",
    ),
    pytest.param(
        lambda p: dict(zip(("client_cert", "client_private_key"), rsa_1024(p), strict=True)),
        "client_cert",
        "too small",
        id="rsa-1024-refused-by-openssl",
    ),
    pytest.param(
        lambda p: dict(zip(("client_cert", "client_private_key"), x25519_pair(p), strict=True)),
        "client_private_key",
        "cannot sign",
        id="key-that-cannot-sign",
    ),
]


def secrets_of(values: dict[str, Any]) -> list[str]:
    """Every fragment of the given values that must never show in an error: passwords, key/PFX lines."""
    fragments = []
    for value in values.values():
        if not isinstance(value, str) or value.startswith("/"):
            continue  # a path is no secret: messages show it on purpose
        fragments.append(value.strip())
        fragments.extend(line for line in value.splitlines() if "-----" not in line)
    # Short values ("x") are words of any sentence; the cases use long, distinctive secrets.
    return [fragment for fragment in fragments if len(fragment) >= 8]


@pytest.mark.parametrize(("case", "field", "phrase"), ERROR_CASES)
def test_each_mistake_names_its_field_and_the_fix(p: Pki, case: Case, field: str, phrase: str) -> None:
    values = {"ca_cert": p.ca_pem, **case(p)}
    with pytest.raises(ClientIdentityError) as caught:
        load_identity(IdentityMaterial(**values))
    error = caught.value
    assert error.field == field
    assert phrase in str(error)
    assert error.hint, "every identity error says how to fix it"
    shown = f"{error} {error!r} {error.hint}"
    for fragment in secrets_of(values) + [KEY_PASSWORD, WRONG_PASSWORD, PFX_PASSWORD]:
        assert fragment not in shown


CA_ERROR_CASES = [
    pytest.param(lambda p: "/no/such/ca.crt", "'/no/such/ca.crt', which does not exist", id="missing-file"),
    pytest.param(lambda p: "the bank's CA", "neither PEM text", id="neither-file-nor-pem"),
    pytest.param(lambda p: p.ca_pem + p.key, "holds a private key", id="private-key-in-ca"),
    pytest.param(lambda p: truncated(p.ca_pem), "no matching -----END", id="truncated"),
    pytest.param(lambda p: csr(p), "certificate signing request", id="csr"),
]


@pytest.mark.parametrize(("ca_case", "phrase"), CA_ERROR_CASES)
def test_a_bad_ca_bundle_is_a_configuration_error_naming_ca_cert(
    p: Pki, ca_case: Callable[[Pki], str], phrase: str
) -> None:
    value = ca_case(p)
    with pytest.raises(ConfigurationError) as caught:
        load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key, ca_cert=value))
    # The server's CA is configuration, not the client identity.
    assert type(caught.value) is ConfigurationError
    assert caught.value.field == "ca_cert"
    assert phrase in str(caught.value)
    for fragment in secrets_of({"ca_cert": value}):
        assert fragment not in str(caught.value)


def test_an_unreadable_file_says_so_without_its_path(
    p: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = pki.write_private(tmp_path / "locked.key", p.client.private_key_pem())

    def denied(*args: object, **kwargs: object) -> None:
        # chmod 000 does not stop root, who may run this suite: make open() refuse instead.
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(material, "open", denied, raising=False)
    with pytest.raises(ClientIdentityError, match="cannot be read: Permission denied") as caught:
        load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=str(locked)))
    assert caught.value.field == "client_private_key"
    assert str(locked) not in str(caught.value)


# ----------------------------------------------------------------------------------------------
# Accepted forms of input


INPUT_FORMS = [
    pytest.param(lambda p: {"client_cert": p.cert, "client_private_key": p.key}, id="pem-text"),
    pytest.param(
        lambda p: {
            "client_cert": str(p.files / "client.crt"),
            "client_private_key": str(p.files / "client.key"),
        },
        id="pem-paths",
    ),
    pytest.param(
        lambda p: {"client_cert": p.files / "client.crt", "client_private_key": p.files / "client.key"},
        id="pathlib-paths",
    ),
    pytest.param(
        lambda p: {
            "client_cert": p.client.certificate_pem(),
            "client_private_key": p.client.private_key_pem(),
        },
        id="pem-bytes",
    ),
    pytest.param(
        lambda p: {
            "client_cert": p.client.certificate.public_bytes(serialization.Encoding.DER),
            "client_private_key": p.client.private_key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        },
        id="der-bytes",
    ),
    pytest.param(
        lambda p: {
            "client_cert": p.cert.replace("\n", "\\n"),
            "client_private_key": p.key.replace("\n", "\\n"),
        },
        id="json-escaped-newlines",
    ),
    pytest.param(
        lambda p: {
            "client_cert": p.cert.replace("\n", "\r\n"),
            "client_private_key": p.key.replace("\n", "\r\n"),
        },
        id="crlf",
    ),
    pytest.param(
        lambda p: {"client_cert": p.cert.replace("\n", " "), "client_private_key": p.key.replace("\n", " ")},
        id="newlines-lost-in-a-one-line-field",
    ),
    pytest.param(
        lambda p: {
            "client_cert": "\n".join("    " + line for line in p.cert.splitlines()),
            "client_private_key": f'"{p.key}"',
        },
        id="indented-and-quoted",
    ),
    pytest.param(
        lambda p: {
            "client_cert": "Bag Attributes\n    friendlyName: client\nsubject=/CN=x\n" + p.cert,
            "client_private_key": "Key Attributes: <No Attributes>\n" + p.key,
        },
        id="openssl-pkcs12-output",
    ),
    pytest.param(
        lambda p: {
            "client_cert": p.cert,
            "client_private_key": p.encrypted_key,
            "client_private_key_password": KEY_PASSWORD,
        },
        id="encrypted-key",
    ),
    pytest.param(
        lambda p: {"client_cert": str(p.files / "client.crt") + "\n", "client_private_key": p.key},
        id="path-with-trailing-newline",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": p.pfx(), "client_pfx_password": PFX_PASSWORD}, id="pfx-base64"
    ),
    pytest.param(
        lambda p: {
            "client_pfx_secret": base64.encodebytes(base64.b64decode(p.pfx())).decode(),
            "client_pfx_password": PFX_PASSWORD,
        },
        id="pfx-base64-mime-lines",
    ),
    pytest.param(
        lambda p: {
            "client_pfx_secret": base64.urlsafe_b64encode(base64.b64decode(p.pfx())).decode().rstrip("="),
            "client_pfx_password": PFX_PASSWORD,
        },
        id="pfx-base64-urlsafe-unpadded",
    ),
    pytest.param(
        lambda p: {"client_pfx_secret": str(p.files / "client.pfx"), "client_pfx_password": PFX_PASSWORD},
        id="pfx-path",
    ),
    pytest.param(
        lambda p: {
            "client_pfx_secret": base64.b64decode(p.pfx()),
            "client_pfx_password": PFX_PASSWORD.encode(),
        },
        id="pfx-bytes",
    ),
    pytest.param(lambda p: {"client_pfx_secret": p.pfx(None)}, id="pfx-without-password"),
]


@pytest.mark.parametrize("form", INPUT_FORMS)
def test_every_accepted_form_loads_the_same_identity(p: Pki, form: Case) -> None:
    identity = load_identity(IdentityMaterial(ca_cert=p.ca_pem, **form(p)))
    assert identity.fingerprint_sha256 == p.client.fingerprint_sha256
    assert identity.certificate == p.client.certificate
    assert identity.warnings == ()


def test_a_path_under_home_is_expanded(p: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(p.files))
    identity = load_identity(IdentityMaterial(client_cert="~/client.crt", client_private_key="~/client.key"))
    assert identity.fingerprint_sha256 == p.client.fingerprint_sha256


def test_a_pfx_saved_as_base64_text_in_a_file_is_read(p: Pki, tmp_path: Path) -> None:
    path = pki.write_private(tmp_path / "client.pfx.b64", p.pfx().encode())
    identity = load_identity(IdentityMaterial(client_pfx_secret=str(path), client_pfx_password=PFX_PASSWORD))
    assert identity.fingerprint_sha256 == p.client.fingerprint_sha256


def test_a_combined_certificate_and_key_file_is_accepted_in_either_field(p: Pki, tmp_path: Path) -> None:
    combined = pki.write_private(
        tmp_path / "combined.pem", p.client.certificate_pem() + p.client.private_key_pem()
    )
    for given in (
        IdentityMaterial(client_cert=str(combined)),
        IdentityMaterial(client_private_key=str(combined)),
    ):
        assert load_identity(given).fingerprint_sha256 == p.client.fingerprint_sha256


def test_rsa_identity(p: Pki) -> None:
    identity = load_identity(
        IdentityMaterial(
            client_cert=pem(p.rsa_client.certificate_pem()),
            client_private_key=traditional_encrypted_key(p),
            client_private_key_password=KEY_PASSWORD,
        )
    )
    assert identity.fingerprint_sha256 == p.rsa_client.fingerprint_sha256


@pytest.mark.parametrize(
    "field",
    [
        pytest.param("client_private_key_password", id="key-passphrase"),
        pytest.param("client_pfx_password", id="pfx-password"),
    ],
)
def test_a_password_with_stray_whitespace_works_with_a_warning(
    p: Pki, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    if field == "client_pfx_password":
        values = {"client_pfx_secret": p.pfx(), field: PFX_PASSWORD + "\n"}
    else:
        values = {"client_cert": p.cert, "client_private_key": p.encrypted_key, field: f" {KEY_PASSWORD}\n"}
    with caplog.at_level(logging.WARNING):
        identity = load_identity(IdentityMaterial(**values))
    assert identity.fingerprint_sha256 == p.client.fingerprint_sha256
    assert len(identity.warnings) == 1
    assert f"{field} has leading or trailing whitespace" in identity.warnings[0]
    assert KEY_PASSWORD not in caplog.text
    assert PFX_PASSWORD not in caplog.text


# ----------------------------------------------------------------------------------------------
# Chains


def test_the_chain_is_reordered_leaf_first_with_intermediates_after(p: Pki) -> None:
    # Ordering goes by subject and issuer names; a real intermediate CA is in the handshake tests.
    intermediate = pki.issue_client_certificate(p.ca, "intermediate")
    leaf = pki.issue_client_certificate(intermediate)
    # Given root, intermediate, leaf (the reverse of what TLS wants) plus an unrelated certificate.
    bundle = b"".join(
        [
            p.ca.certificate_pem(),
            p.other.certificate_pem(),
            intermediate.certificate_pem(),
            leaf.certificate_pem(),
        ]
    )
    identity = load_identity(
        IdentityMaterial(client_cert=bundle.decode(), client_private_key=pem(leaf.private_key_pem()))
    )
    assert identity.chain == (
        leaf.certificate,
        intermediate.certificate,
        p.ca.certificate,
        p.other.certificate,
    )
    assert identity.certificate == leaf.certificate


def test_a_pfx_chain_puts_the_client_certificate_first(p: Pki) -> None:
    identity = load_identity(IdentityMaterial(client_pfx_secret=p.pfx(), client_pfx_password=PFX_PASSWORD))
    assert identity.chain == (p.client.certificate, p.ca.certificate)


# ----------------------------------------------------------------------------------------------
# Warnings


def test_a_certificate_expiring_soon_warns_and_logs(p: Pki, caplog: pytest.LogCaptureFixture) -> None:
    end = p.client.certificate.not_valid_after_utc
    with caplog.at_level(logging.WARNING, logger="airflow_provider_bankapi.client.identity.identity"):
        identity = load_identity(
            IdentityMaterial(client_cert=p.cert, client_private_key=p.key),
            now=end - datetime.timedelta(days=10, hours=1),
        )
    assert len(identity.warnings) == 1
    assert "expires in 10 days" in identity.warnings[0]
    assert [record.getMessage() for record in caplog.records] == list(identity.warnings)
    assert all(record.levelno == logging.WARNING for record in caplog.records)


@pytest.mark.parametrize(
    ("days_left", "warning_days", "warns"),
    [
        pytest.param(29.5, 30, True, id="within-default-window"),
        pytest.param(30.5, 30, False, id="outside-default-window"),
        pytest.param(10.5, 5, False, id="custom-window-quiet"),
        pytest.param(4.5, 5, True, id="custom-window-warns"),
        pytest.param(0.5, 0, False, id="window-zero-never-warns"),
    ],
)
def test_the_expiry_window_is_configurable(p: Pki, days_left: float, warning_days: int, warns: bool) -> None:
    now = p.client.certificate.not_valid_after_utc - datetime.timedelta(days=days_left)
    identity = load_identity(
        IdentityMaterial(client_cert=p.cert, client_private_key=p.key),
        now=now,
        expiry_warning_days=warning_days,
    )
    assert bool(identity.warnings) is warns


def test_a_negative_expiry_window_is_refused(p: Pki) -> None:
    with pytest.raises(ValueError, match="expiry_warning_days"):
        load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key), expiry_warning_days=-1)


def test_no_client_auth_usage_warns(p: Pki, caplog: pytest.LogCaptureFixture) -> None:
    issued = p.no_client_auth
    with caplog.at_level(logging.WARNING):
        identity = load_identity(
            IdentityMaterial(
                client_cert=pem(issued.certificate_pem()), client_private_key=pem(issued.private_key_pem())
            )
        )
    assert len(identity.warnings) == 1
    assert "without clientAuth" in identity.warnings[0]
    assert identity.describe().client_auth is False
    assert "without clientAuth" in caplog.text


def test_a_certificate_without_extended_key_usage_may_authenticate_a_client(p: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed(key)
    identity = load_identity(
        IdentityMaterial(
            client_cert=certificate.public_bytes(serialization.Encoding.PEM),
            client_private_key=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    )
    assert identity.warnings == ()
    assert identity.describe().client_auth is True


def test_ca_cert_holding_the_client_certificate_warns(p: Pki) -> None:
    identity = load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key, ca_cert=p.cert))
    assert any("holds the client certificate itself" in warning for warning in identity.warnings)


def test_an_expired_ca_certificate_warns(p: Pki) -> None:
    now = datetime.datetime.now(UTC)
    old_ca = pki.issue_client_certificate(
        p.ca,
        "old CA",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    identity = load_identity(
        IdentityMaterial(
            client_cert=p.cert, client_private_key=p.key, ca_cert=p.ca_pem + pem(old_ca.certificate_pem())
        )
    )
    assert identity.warnings == (
        "1 of the 2 CA certificates in ca_cert expired (first: "
        f"{old_ca.certificate.subject.rfc4514_string()}, on "
        f"{old_ca.certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC); the bank's "
        "server cannot be verified through them.",
    )


def test_a_good_identity_is_quiet(p: Pki, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        identity = load_identity(
            IdentityMaterial(client_cert=p.cert, client_private_key=p.key, ca_cert=p.ca_pem)
        )
    assert identity.warnings == ()
    assert caplog.records == []


# ----------------------------------------------------------------------------------------------
# describe()


def test_describe(p: Pki) -> None:
    identity = load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key))
    certificate = p.client.certificate
    now = certificate.not_valid_after_utc - datetime.timedelta(days=42, hours=3)
    description = identity.describe(now=now)
    assert description == CertificateDescription(
        subject="CN=sandbox-client,O=Banking API sandbox",
        issuer="CN=Banking API sandbox CA,O=Banking API sandbox",
        serial_number=format(certificate.serial_number, "x"),
        not_valid_before=certificate.not_valid_before_utc,
        not_valid_after=certificate.not_valid_after_utc,
        days_left=42,
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        client_auth=True,
    )
    assert description.not_valid_after.tzinfo is not None
    assert description.not_valid_after.utcoffset() == datetime.timedelta(0)
    assert identity.describe(now=now.replace(tzinfo=None)).days_left == 42, "naive datetimes are UTC"


def test_describe_counts_from_now_by_default(p: Pki) -> None:
    identity = load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key))
    assert identity.describe().days_left in (364, 365)


# ----------------------------------------------------------------------------------------------
# What the objects give away


def test_reprs_give_away_no_secret(p: Pki) -> None:
    material = IdentityMaterial(
        client_cert=p.cert,
        client_private_key=p.encrypted_key,
        client_private_key_password=KEY_PASSWORD,
        ca_cert=p.ca_pem,
    )
    identity = load_identity(material)
    for text in (repr(material), str(material), repr(identity)):
        for fragment in secrets_of({"k": p.encrypted_key, "c": p.cert}) + [KEY_PASSWORD]:
            assert fragment not in text
    assert repr(material) == (
        "IdentityMaterial(client_cert=<set>, client_private_key=<set>, client_private_key_password=<set>, "
        "ca_cert=<set>)"
    )
    assert p.client.fingerprint_sha256 in repr(identity)


def test_an_identity_cannot_be_pickled(p: Pki) -> None:
    # The key lives in the SSLContext; nothing may carry it into XCom or trigger kwargs.
    identity = load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key))
    assert isinstance(identity, ClientIdentity)
    with pytest.raises(TypeError):
        pickle.dumps(identity)


def test_from_extra_picks_the_identity_fields(p: Pki) -> None:
    extra = {"client_cert": p.cert, "client_private_key": p.key, "ca_cert": p.ca_pem, "timeout": 30, "x": "y"}
    material = IdentityMaterial.from_extra(extra)
    assert material == IdentityMaterial(client_cert=p.cert, client_private_key=p.key, ca_cert=p.ca_pem)


def test_a_numeric_pfx_password_from_json_is_accepted(p: Pki) -> None:
    material = IdentityMaterial.from_extra(
        {"client_pfx_secret": p.pfx("123456"), "client_pfx_password": 123456}
    )
    assert load_identity(material).fingerprint_sha256 == p.client.fingerprint_sha256


# ----------------------------------------------------------------------------------------------
# No network, and the SSLContext


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("identity loading touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.usefixtures("no_network")
def test_loading_and_failing_need_no_network(p: Pki) -> None:
    assert load_identity(IdentityMaterial(client_pfx_secret=p.pfx(), client_pfx_password=PFX_PASSWORD))
    with pytest.raises(ClientIdentityError):
        load_identity(IdentityMaterial(client_pfx_secret=p.pfx(), client_pfx_password=WRONG_PASSWORD))


def test_the_ssl_context_is_built_once_and_strict(p: Pki) -> None:
    identity = load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key, ca_cert=p.ca_pem))
    context = identity.ssl_context()
    assert identity.ssl_context() is context
    assert isinstance(context, ssl.SSLContext)
    assert context.protocol == ssl.PROTOCOL_TLS_CLIENT
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.check_hostname is True
    assert context.verify_mode == ssl.CERT_REQUIRED
    # Only the configured CA, not the system's roots.
    # ssl writes the serial as hex padded to whole bytes: compare numbers, not strings.
    assert [int(ca["serialNumber"], 16) for ca in context.get_ca_certs()] == [p.ca.certificate.serial_number]
    assert identity.ca_certificates == (p.ca.certificate,)


def test_without_ca_cert_the_system_trust_is_used(p: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[ssl.SSLContext] = []
    original = ssl.create_default_context

    def spy(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tls_context.ssl, "create_default_context", spy)
    identity = load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key))
    assert made == [identity.ssl_context()]
    assert identity.ca_certificates == ()
    assert identity.ssl_context().minimum_version == ssl.TLSVersion.TLSv1_2


# ----------------------------------------------------------------------------------------------
# The plain private key never touches disk, and nothing is left behind


def memfds() -> set[str]:
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("/memfd:" + tls_context.MEMFD_PREFIX):
            found.add(f"{name}->{target}")
    return found


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile's directory, pointed at an empty directory of this test only."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@pytest.mark.skipif(not tls_context.memfd_available(), reason="needs memfd_create and /proc")
def test_memfd_loading_writes_no_file_and_leaks_no_descriptor(
    p: Pki, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_temporary_directory(*args: object, **kwargs: object) -> None:
        raise AssertionError("the memfd path must not fall back to a temporary directory")

    monkeypatch.setattr(tls_context.tempfile, "TemporaryDirectory", no_temporary_directory)
    before = memfds()
    identity = load_identity(IdentityMaterial(client_pfx_secret=p.pfx(), client_pfx_password=PFX_PASSWORD))
    assert identity.ssl_context() is not None
    assert memfds() == before
    assert list(private_tmp.iterdir()) == []


def test_the_fallback_writes_only_an_encrypted_key_in_a_private_directory_and_deletes_it(
    p: Pki, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_context, "memfd_available", lambda: False)
    seen: list[dict[str, Any]] = []
    original = ssl.SSLContext.load_cert_chain

    def inspect(
        self: ssl.SSLContext, certfile: str, keyfile: str | None = None, password: Any = None
    ) -> None:
        assert keyfile is not None
        directory = os.path.dirname(keyfile)
        seen.append(
            {
                "directory_mode": stat.S_IMODE(os.stat(directory).st_mode),
                "key_mode": stat.S_IMODE(os.stat(keyfile).st_mode),
                "chain_mode": stat.S_IMODE(os.stat(certfile).st_mode),
                "key": Path(keyfile).read_text(),
                "in_private_tmp": Path(directory).parent == private_tmp,
            }
        )
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", inspect)
    identity = load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key))
    assert identity.fingerprint_sha256 == p.client.fingerprint_sha256
    [written] = seen
    assert written["in_private_tmp"]
    assert written["directory_mode"] == 0o700
    assert written["key_mode"] == written["chain_mode"] == 0o600
    assert written["key"].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    for line in p.key.splitlines()[1:-1]:
        assert line not in written["key"]
    assert list(private_tmp.iterdir()) == []


def test_memfd_refused_by_the_kernel_falls_back(
    p: Pki, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(tls_context.os, "memfd_create", refuse, raising=False)
    identity = load_identity(IdentityMaterial(client_cert=p.cert, client_private_key=p.key))
    assert identity.fingerprint_sha256 == p.client.fingerprint_sha256
    assert list(private_tmp.iterdir()) == []


def test_a_failed_load_leaves_nothing_behind(
    p: Pki, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_context, "memfd_available", lambda: False)
    certificate, key = rsa_1024(p)
    before = memfds()
    with pytest.raises(ClientIdentityError, match="too small"):
        load_identity(IdentityMaterial(client_cert=certificate, client_private_key=key))
    assert list(private_tmp.iterdir()) == []
    assert memfds() == before

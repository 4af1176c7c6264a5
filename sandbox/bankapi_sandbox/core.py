"""The sandbox's stand-in for the bank's back office ("CORE"): credentials, their certificates and IPs.

The bank's documented provisioning steps (docs/bank-contract.md), in order: register a client
certificate, create the credential, set the allowed IPs, bind the certificate to the credential,
copy the client_secret.
A credential holds **at most two active certificates**, so that one can be rotated without downtime.

The store is one JSON file (``DIR/core.json``, 0600) so that the CLI can change it while a server
runs: the server re-reads it whenever the file changes. Only a SHA-256 of each client_secret is
kept, as a real back office would; the secret itself is shown once, when the credential is made.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from bankapi_sandbox.pki import write_private

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

MAX_ACTIVE_CERTIFICATES = 2


class CoreError(ValueError):
    """A back-office operation was refused (unknown credential, a third certificate, a bad IP...)."""


def secret_digest(client_secret: str) -> str:
    # A fast hash is enough: the sandbox's secrets are 256-bit random strings, not passwords.
    return hashlib.sha256(client_secret.encode()).hexdigest()


def fingerprint_of(certificate: x509.Certificate) -> str:
    """SHA-256 over the DER certificate, lowercase hex: the thumbprint RFC 8705 binds tokens to."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def normalise_fingerprint(text: str) -> str:
    """Accept ``AB:CD:...``, ``abcd...`` or ``sha256:abcd...``; return 64 lowercase hex digits."""
    cleaned = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise CoreError(f"not a SHA-256 certificate fingerprint (64 hex digits): {text!r}")
    return cleaned


def normalise_allowed_ip(entry: str) -> str:
    """One allowlist entry: an IP address or a CIDR block, returned in canonical form."""
    try:
        return str(ipaddress.ip_network(entry.strip(), strict=False))
    except ValueError as exc:
        raise CoreError(f"not an IP address or CIDR block: {entry!r}") from exc


@dataclass(frozen=True)
class BoundCertificate:
    """A client certificate bound to a credential, known by its SHA-256 fingerprint."""

    fingerprint_sha256: str
    subject: str = ""
    not_valid_after: str | None = None  # ISO 8601 UTC, when the certificate was known at binding

    def is_active(self, now: datetime.datetime) -> bool:
        # An expired certificate stays listed but no longer counts against the two-certificate
        # limit: the point of the limit is rotation, and an expired one has already rotated out.
        if self.not_valid_after is None:
            return True
        return now < datetime.datetime.fromisoformat(self.not_valid_after)


@dataclass(frozen=True)
class Credential:
    """A credential as CORE holds it. ``secret_sha256`` is a digest, never the secret."""

    client_id: str
    secret_sha256: str = field(repr=False)
    active: bool = True
    allowed_ips: tuple[str, ...] = ()
    certificates: tuple[BoundCertificate, ...] = ()

    def check_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(self.secret_sha256, secret_digest(client_secret))

    def is_bound(self, fingerprint: str) -> bool:
        return any(c.fingerprint_sha256 == fingerprint for c in self.certificates)

    def allows_ip(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in ipaddress.ip_network(entry, strict=False) for entry in self.allowed_ips)

    def active_certificates(self, now: datetime.datetime | None = None) -> tuple[BoundCertificate, ...]:
        moment = now or datetime.datetime.now(datetime.timezone.utc)
        return tuple(c for c in self.certificates if c.is_active(moment))

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "secret_sha256": self.secret_sha256,
            "active": self.active,
            "allowed_ips": list(self.allowed_ips),
            "certificates": [
                {
                    "fingerprint_sha256": c.fingerprint_sha256,
                    "subject": c.subject,
                    "not_valid_after": c.not_valid_after,
                }
                for c in self.certificates
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Credential:
        return cls(
            client_id=str(data["client_id"]),
            secret_sha256=str(data["secret_sha256"]),
            active=bool(data.get("active", True)),
            allowed_ips=tuple(str(ip) for ip in data.get("allowed_ips", ())),
            certificates=tuple(
                BoundCertificate(
                    fingerprint_sha256=str(c["fingerprint_sha256"]),
                    subject=str(c.get("subject", "")),
                    not_valid_after=c.get("not_valid_after"),
                )
                for c in data.get("certificates", ())
            ),
        )


CertificateRef = x509.Certificate | Path | str
"""A certificate to bind: a loaded certificate, the path of a PEM file, or a SHA-256 fingerprint."""


def _bound_certificate(ref: CertificateRef) -> BoundCertificate:
    if isinstance(ref, str) and not Path(ref).is_file():
        return BoundCertificate(normalise_fingerprint(ref))
    if isinstance(ref, (str, Path)):
        try:
            certificate = x509.load_pem_x509_certificate(Path(ref).read_bytes())
        except ValueError as exc:
            raise CoreError(f"{ref}: not a PEM certificate") from exc
    else:
        certificate = ref
    return BoundCertificate(
        fingerprint_sha256=fingerprint_of(certificate),
        subject=certificate.subject.rfc4514_string(),
        not_valid_after=certificate.not_valid_after_utc.isoformat(),
    )


class CredentialStore:
    """CORE's credentials in ``path`` (JSON, 0600), safe to share between the CLI and a running server.

    Readers see the file's latest state: it is re-read whenever its inode, size or mtime changes
    (writers replace it atomically). Writers serialise on an advisory lock file beside it.

    :param path: the JSON file, usually ``DIR/core.json``; created empty when missing.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._guard = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._credentials: dict[str, Credential] = {}
        if not self.path.exists():
            self._write({})

    def __repr__(self) -> str:
        return f"CredentialStore({str(self.path)!r})"

    # -- reading ------------------------------------------------------------------------------

    def _current(self) -> dict[str, Credential]:
        stat = self.path.stat()
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._guard:
            if stamp != self._stamp:
                data = json.loads(self.path.read_text())
                self._credentials = {
                    c["client_id"]: Credential.from_json(c) for c in data.get("credentials", [])
                }
                self._stamp = stamp
            return self._credentials

    def get(self, client_id: str) -> Credential | None:
        return self._current().get(client_id)

    def credentials(self) -> tuple[Credential, ...]:
        return tuple(self._current().values())

    def require(self, client_id: str) -> Credential:
        credential = self.get(client_id)
        if credential is None:
            raise CoreError(f"no credential with client_id {client_id!r}")
        return credential

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, Credential]]:
        with open(self._lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                self._stamp = None  # another process may have written since our last read
                credentials = dict(self._current())
                yield credentials
                self._write(credentials)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _write(self, credentials: dict[str, Credential]) -> None:
        body = json.dumps({"credentials": [c.to_json() for c in credentials.values()]}, indent=2)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        write_private(temporary, body.encode() + b"\n")
        os.replace(temporary, self.path)

    def _update(self, client_id: str, **changes: Any) -> Credential:
        with self._editing() as credentials:
            if client_id not in credentials:
                raise CoreError(f"no credential with client_id {client_id!r}")
            updated = replace(credentials[client_id], **changes)
            credentials[client_id] = updated
        return updated

    def add(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        allowed_ips: Iterable[str] = ("127.0.0.1", "::1"),
        active: bool = True,
    ) -> tuple[Credential, str]:
        """Create a credential; return it and its client_secret (the only time the secret is shown).

        :param client_id: chosen id, or None for a random one.
        :param client_secret: chosen secret, or None for a random 256-bit one.
        :param allowed_ips: the allowlist (IP addresses or CIDR blocks).
        :param active: whether the credential can fetch tokens right away.
        """
        client_id = client_id or f"sandbox-{secrets.token_hex(6)}"
        client_secret = client_secret or secrets.token_urlsafe(32)
        ips = tuple(normalise_allowed_ip(ip) for ip in allowed_ips)
        credential = Credential(client_id, secret_digest(client_secret), active, ips)
        with self._editing() as credentials:
            if client_id in credentials:
                raise CoreError(f"a credential with client_id {client_id!r} already exists")
            credentials[client_id] = credential
        return credential, client_secret

    def bind(self, client_id: str, certificate: CertificateRef) -> Credential:
        """Bind a client certificate to a credential; refused when two are already active."""
        bound = _bound_certificate(certificate)
        with self._editing() as credentials:
            credential = credentials.get(client_id)
            if credential is None:
                raise CoreError(f"no credential with client_id {client_id!r}")
            if credential.is_bound(bound.fingerprint_sha256):
                raise CoreError(
                    f"certificate {bound.fingerprint_sha256[:16]}... is already bound to {client_id!r}"
                )
            if len(credential.active_certificates()) >= MAX_ACTIVE_CERTIFICATES:
                raise CoreError(
                    f"credential {client_id!r} already has {MAX_ACTIVE_CERTIFICATES} active certificates, "
                    "the most the bank allows (two, for rotation without downtime): unbind one first"
                )
            credential = replace(credential, certificates=(*credential.certificates, bound))
            credentials[client_id] = credential
        return credential

    def unbind(self, client_id: str, certificate: CertificateRef) -> Credential:
        """Remove a certificate from a credential; tokens fetched with it stop working at once."""
        fingerprint = _bound_certificate(certificate).fingerprint_sha256
        with self._editing() as credentials:
            credential = credentials.get(client_id)
            if credential is None:
                raise CoreError(f"no credential with client_id {client_id!r}")
            if not credential.is_bound(fingerprint):
                raise CoreError(f"certificate {fingerprint[:16]}... is not bound to {client_id!r}")
            remaining = tuple(c for c in credential.certificates if c.fingerprint_sha256 != fingerprint)
            credential = replace(credential, certificates=remaining)
            credentials[client_id] = credential
        return credential

    def rotate_secret(self, client_id: str, client_secret: str | None = None) -> tuple[Credential, str]:
        """Give a credential a new client_secret (the old one stops fetching tokens at once; tokens already
        issued live on until they expire); return it and the new secret (the only time it is shown).
        """
        client_secret = client_secret or secrets.token_urlsafe(32)
        return self._update(client_id, secret_sha256=secret_digest(client_secret)), client_secret

    def deactivate(self, client_id: str) -> Credential:
        return self._update(client_id, active=False)

    def activate(self, client_id: str) -> Credential:
        return self._update(client_id, active=True)

    def set_allowed_ips(self, client_id: str, allowed_ips: Iterable[str]) -> Credential:
        """Replace the credential's allowlist (IP addresses or CIDR blocks; empty refuses every IP)."""
        return self._update(client_id, allowed_ips=tuple(normalise_allowed_ip(ip) for ip in allowed_ips))

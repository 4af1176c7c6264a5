"""``init DIR``: provision a sandbox bank the way the bank's CORE does, as files in one directory.

::

    ca.crt  ca.key            the sandbox's CA (it signs the server and every client certificate)
    server.crt  server.key    the server, for localhost and 127.0.0.1
    client.crt  client.key    the client identity as PEM ...
    client.pfx                ... and the same identity as PKCS#12, with a password
    core.json                 CORE's credentials (see core.py); one credential, bound to client.crt
    connection.json           the Airflow connection (AIRFLOW_CONN_* JSON form), PEM variant
    connection-pfx.json       the same connection with the PKCS#12 file and its password

Private keys, the PFX, core.json and both connection files (they hold the client_secret) are 0600.

The connection files carry the base URL and its port, which depend on where the server listens. ``init``
writes the port it is given (default :data:`DEFAULT_PORT`); ``serve`` (and :func:`running`) rewrite
both files with the real address as soon as the server listens, so they are right whenever the
sandbox runs, including with ``--port 0``.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bankapi_sandbox import pki
from bankapi_sandbox.core import CredentialStore, fingerprint_of

BASE_PATH = "/public/gw_banking/v1"
DEFAULT_PORT = 8443
SERVER_NAMES = ("localhost", "127.0.0.1")


def base_url(host: str, port: int) -> str:
    """The Banking API base URL of a sandbox listening on ``host:port``."""
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"https://{host}:{port}{BASE_PATH}"


@dataclass(frozen=True)
class Layout:
    """The files of one provisioned sandbox directory."""

    directory: Path

    def _file(self, name: str) -> Path:
        return self.directory / name

    @property
    def ca_cert(self) -> Path:
        return self._file("ca.crt")

    @property
    def ca_key(self) -> Path:
        return self._file("ca.key")

    @property
    def server_cert(self) -> Path:
        return self._file("server.crt")

    @property
    def server_key(self) -> Path:
        return self._file("server.key")

    @property
    def client_cert(self) -> Path:
        return self._file("client.crt")

    @property
    def client_key(self) -> Path:
        return self._file("client.key")

    @property
    def client_pfx(self) -> Path:
        return self._file("client.pfx")

    @property
    def core(self) -> Path:
        return self._file("core.json")

    @property
    def connection(self) -> Path:
        return self._file("connection.json")

    @property
    def connection_pfx(self) -> Path:
        return self._file("connection-pfx.json")

    @property
    def runtime(self) -> Path:
        """Written by a running ``serve``: its base URL, control URL and pid (removed at stop)."""
        return self._file("sandbox.json")

    def is_provisioned(self) -> bool:
        return self.core.exists() and self.connection.exists()

    def credential_store(self) -> CredentialStore:
        return CredentialStore(self.core)

    def read_connection(self, pfx: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.connection_pfx if pfx else self.connection).read_text())
        return data


@dataclass(frozen=True)
class ClientFiles:
    """A client certificate and key written into the sandbox directory."""

    certificate: Path
    private_key: Path
    fingerprint_sha256: str


def init(
    directory: Path | str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    server_names: tuple[str, ...] = SERVER_NAMES,
    client_id: str | None = None,
    force: bool = False,
) -> Layout:
    """Provision a sandbox into ``directory`` (created if needed).

    :param directory: where the files go.
    :param host: the host written in the connection files' base URL.
    :param port: the port written there (``serve`` rewrites it with the real one).
    :param server_names: DNS names and IP addresses the server certificate covers.
    :param client_id: the credential's client_id (random when None).
    :param force: provision again over an existing sandbox (new CA, new credential).
    """
    layout = Layout(Path(directory).resolve())
    layout.directory.mkdir(parents=True, exist_ok=True)
    if layout.is_provisioned() and not force:
        raise FileExistsError(f"{layout.directory} already holds a sandbox (use force to provision it again)")
    for stale in (layout.core, layout.runtime):
        stale.unlink(missing_ok=True)

    ca = pki.make_ca()
    server = pki.issue_server_certificate(ca, server_names)
    client = pki.issue_client_certificate(ca, "sandbox-client")
    pfx_password = secrets.token_urlsafe(12)  # URL-safe: no ':' to confuse curl's --cert FILE:PASSWORD

    pki.write_public(layout.ca_cert, ca.certificate_pem())
    pki.write_private(layout.ca_key, ca.private_key_pem())
    pki.write_public(layout.server_cert, server.certificate_pem())
    pki.write_private(layout.server_key, server.private_key_pem())
    pki.write_public(layout.client_cert, client.certificate_pem())
    pki.write_private(layout.client_key, client.private_key_pem())
    pki.write_private(layout.client_pfx, client.pkcs12(pfx_password.encode(), ca=ca))

    store = layout.credential_store()
    credential, client_secret = store.add(client_id, allowed_ips=("127.0.0.1", "::1"))
    store.bind(credential.client_id, client.certificate)
    write_connections(layout, base_url(host, port), credential.client_id, client_secret, pfx_password)
    return layout


def write_connections(
    layout: Layout, url: str, client_id: str, client_secret: str, pfx_password: str
) -> None:
    """Write ``connection.json`` and ``connection-pfx.json`` (both 0600: they hold the secret)."""
    common = {"conn_type": "bankapi", **_address(url), "login": client_id, "password": client_secret}
    pem = {
        **common,
        "extra": {
            "client_cert": str(layout.client_cert),
            "client_private_key": str(layout.client_key),
            "ca_cert": str(layout.ca_cert),
        },
    }
    pfx = {
        **common,
        "extra": {
            "client_pfx_secret": str(layout.client_pfx),
            "client_pfx_password": pfx_password,
            "ca_cert": str(layout.ca_cert),
        },
    }
    pki.write_private(layout.connection, json.dumps(pem, indent=2).encode() + b"\n")
    pki.write_private(layout.connection_pfx, json.dumps(pfx, indent=2).encode() + b"\n")


def _address(url: str) -> dict[str, Any]:
    # The port is written out too: Airflow's Test button refuses a saved connection whose stored port
    # differs from the one the UI sends, and the UI sends 0 for a connection without one.
    return {"host": url, "port": urlsplit(url).port}


def set_base_url(layout: Layout, url: str) -> None:
    """Point both connection files at ``url`` (what ``serve`` does once it knows its port)."""
    for path in (layout.connection, layout.connection_pfx):
        data = json.loads(path.read_text())
        address = _address(url)
        if {key: data.get(key) for key in address} != address:
            data.update(address)
            pki.write_private(path, json.dumps(data, indent=2).encode() + b"\n")


def load_ca(layout: Layout) -> pki.Issued:
    """The sandbox's CA, to sign more client certificates (rotation, expired ones for tests)."""
    certificate = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise TypeError(f"{layout.ca_key}: unsupported CA key type")
    return pki.Issued(certificate, key)


def issue_client(layout: Layout, name: str, *, bind_to: str | None = None, **options: Any) -> ClientFiles:
    """Sign another client certificate with the sandbox CA and write ``NAME.crt`` / ``NAME.key`` (0600).

    :param layout: the sandbox.
    :param name: file stem and common name, e.g. ``"client2"``.
    :param bind_to: a client_id to bind the new certificate to (subject to the two-certificate limit).
    :param options: passed to :func:`pki.issue_client_certificate` (``days``, ``not_after``...).
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"not a plain file name: {name!r}")
    issued = pki.issue_client_certificate(load_ca(layout), name, **options)
    files = ClientFiles(
        certificate=pki.write_public(layout.directory / f"{name}.crt", issued.certificate_pem()),
        private_key=pki.write_private(layout.directory / f"{name}.key", issued.private_key_pem()),
        fingerprint_sha256=fingerprint_of(issued.certificate),
    )
    if bind_to is not None:
        layout.credential_store().bind(bind_to, issued.certificate)
    return files

"""Real TLS handshakes with the identity's SSLContext against a plain ``ssl`` server that demands and
verifies a client certificate (no sandbox: only the standard library on the server side)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from airflow_provider_bankapi.client.identity import tls as tls_context
from airflow_provider_bankapi.client.identity.identity import ClientIdentity, load_identity
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from bankapi_sandbox import pki

TIMEOUT = 10.0
TLS_VERSIONS = [
    pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"),
    pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3"),
]


def make_intermediate(root: pki.Issued, common_name: str = "Banking API intermediate CA") -> pki.Issued:
    return pki.make_ca(common_name, days=365, issuer=root)


@dataclass
class ServerResult:
    peer_certificate: bytes | None = None
    version: str | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def mtls_server(
    directory: Path, server: pki.Issued, client_ca: pki.Issued, version: ssl.TLSVersion
) -> Iterator[tuple[int, ServerResult]]:
    """One connection: verify the client's certificate against ``client_ca``, answer its SHA-256."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate = pki.write_public(directory / "server.crt", server.certificate_pem())
    key = pki.write_private(directory / "server.key", server.private_key_pem())
    context.load_cert_chain(certificate, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=client_ca.certificate_pem().decode())
    context.minimum_version = context.maximum_version = version
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    result = ServerResult()

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            connection.settimeout(TIMEOUT)
            with context.wrap_socket(connection, server_side=True) as tls:
                result.peer_certificate = tls.getpeercert(binary_form=True)
                result.version = tls.version()
                assert result.peer_certificate is not None
                tls.sendall(hashlib.sha256(result.peer_certificate).hexdigest().encode())
        except BaseException as exc:  # handed to the test thread
            result.error = exc
        finally:
            result.done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], result
    finally:
        result.done.wait(TIMEOUT)
        listener.close()
        thread.join(TIMEOUT)


def handshake(identity: ClientIdentity, port: int) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        identity.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        received = b""
        while chunk := tls.recv(1024):
            received += chunk
        return received.decode()


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca()


@pytest.fixture(scope="module")
def server(ca: pki.Issued) -> pki.Issued:
    return pki.issue_server_certificate(ca)


@pytest.mark.parametrize("version", TLS_VERSIONS)
@pytest.mark.parametrize(
    ("key_type", "form"),
    [
        pytest.param("ec", "pem", id="ec-pem"),
        pytest.param("rsa", "pem", id="rsa-pem"),
        pytest.param("ec", "pfx", id="ec-pfx"),
    ],
)
def test_the_server_verifies_the_client_certificate(
    tmp_path: Path, ca: pki.Issued, server: pki.Issued, version: ssl.TLSVersion, key_type: str, form: str
) -> None:
    client = pki.issue_client_certificate(ca, key_type=key_type)  # type: ignore[arg-type]
    if form == "pem":
        material = IdentityMaterial(
            client_cert=client.certificate_pem().decode(),
            client_private_key=client.private_key_pem().decode(),
            ca_cert=ca.certificate_pem().decode(),
        )
    else:
        material = IdentityMaterial(
            client_pfx_secret=base64.b64encode(client.pkcs12(b"pfx-password", ca=ca)).decode(),
            client_pfx_password="pfx-password",
            ca_cert=ca.certificate_pem().decode(),
        )
    identity = load_identity(material)
    with mtls_server(tmp_path, server, ca, version) as (port, result):
        answer = handshake(identity, port)
    assert result.error is None
    assert answer == identity.fingerprint_sha256 == client.fingerprint_sha256
    assert result.version == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_intermediates_given_out_of_order_are_sent_after_the_leaf(
    tmp_path: Path, ca: pki.Issued, server: pki.Issued, version: ssl.TLSVersion
) -> None:
    # The server trusts only the root: the handshake works only if the intermediate is sent.
    intermediate = make_intermediate(ca)
    client = pki.issue_client_certificate(intermediate)
    identity = load_identity(
        IdentityMaterial(
            client_cert=(intermediate.certificate_pem() + client.certificate_pem()).decode(),
            client_private_key=client.private_key_pem().decode(),
            ca_cert=ca.certificate_pem().decode(),
        )
    )
    with mtls_server(tmp_path, server, ca, version) as (port, result):
        answer = handshake(identity, port)
    assert result.error is None
    assert answer == client.fingerprint_sha256


def test_without_its_intermediate_the_client_is_refused(
    tmp_path: Path, ca: pki.Issued, server: pki.Issued
) -> None:
    # The control for the test above: the server really checks the chain.
    client = pki.issue_client_certificate(make_intermediate(ca))
    identity = load_identity(
        IdentityMaterial(
            client_cert=client.certificate_pem().decode(),
            client_private_key=client.private_key_pem().decode(),
            ca_cert=ca.certificate_pem().decode(),
        )
    )
    with mtls_server(tmp_path, server, ca, ssl.TLSVersion.TLSv1_2) as (port, result):
        with pytest.raises(ssl.SSLError):
            handshake(identity, port)
    assert isinstance(result.error, ssl.SSLError)


def test_a_server_from_another_ca_is_not_trusted(tmp_path: Path, ca: pki.Issued) -> None:
    # ca_cert replaces the system store and anything else: a server of another CA fails verification.
    other_ca = pki.make_ca("Another CA")
    client = pki.issue_client_certificate(ca)
    identity = load_identity(
        IdentityMaterial(
            client_cert=client.certificate_pem().decode(),
            client_private_key=client.private_key_pem().decode(),
            ca_cert=ca.certificate_pem().decode(),
        )
    )
    with mtls_server(tmp_path, pki.issue_server_certificate(other_ca), ca, ssl.TLSVersion.TLSv1_3) as (
        port,
        _,
    ):
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            handshake(identity, port)
    assert caught.value.verify_code == 20  # unable to get local issuer certificate


def test_a_context_loaded_through_the_private_directory_fallback_works(
    tmp_path: Path, ca: pki.Issued, server: pki.Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_context, "memfd_available", lambda: False)
    client = pki.issue_client_certificate(ca, key_type="rsa")
    identity = load_identity(
        IdentityMaterial(
            client_cert=client.certificate_pem().decode(),
            client_private_key=client.private_key_pem().decode(),
            ca_cert=ca.certificate_pem().decode(),
        )
    )
    with mtls_server(tmp_path, server, ca, ssl.TLSVersion.TLSv1_3) as (port, result):
        answer = handshake(identity, port)
    assert result.error is None
    assert answer == client.fingerprint_sha256


def test_one_context_serves_many_connections(tmp_path: Path, ca: pki.Issued, server: pki.Issued) -> None:
    client = pki.issue_client_certificate(ca)
    identity = load_identity(
        IdentityMaterial(
            client_cert=client.certificate_pem().decode(),
            client_private_key=client.private_key_pem().decode(),
            ca_cert=ca.certificate_pem().decode(),
        )
    )
    for round_number in range(3):
        directory = tmp_path / str(round_number)
        directory.mkdir()
        with mtls_server(directory, server, ca, ssl.TLSVersion.TLSv1_3) as (port, result):
            assert handshake(identity, port) == client.fingerprint_sha256
        assert result.error is None
    assert len(identity.ssl_context().get_ca_certs()) == 1

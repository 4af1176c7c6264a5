"""A real nginx gateway with ``ssl_verify_client on`` in front of the token endpoint, on loopback.

nginx does not fail the handshake for a missing or unverified client certificate: it answers with an
HTTP page of its own (400 "No required SSL certificate was sent", 400 "The SSL certificate error").
These tests make it do so and check that the user gets the client-certificate error with the
checklist that fits. They are skipped only where nginx is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.settings import ClientSettings, TransportSettings
from airflow_provider_bankapi.client.transport.adapter import make_session
from airflow_provider_bankapi.client.transport.answers import raise_for_bank_status
from airflow_provider_bankapi.errors import (
    HINT_CERTIFICATE_NOT_SENT,
    HINT_CERTIFICATE_NOT_VERIFIED,
    InvalidClientCertificateError,
)
from bankapi_sandbox import pki

NGINX = shutil.which(
    "nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
)
pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)"),
    pytest.mark.slow,  # starts an nginx process
]

TOKEN = "/public/gw_banking/v1/auth/token-v2"
CONFIG = """
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {dir}/server.crt;
        ssl_certificate_key {dir}/server.key;
        ssl_client_certificate {dir}/ca.crt;
        ssl_verify_client on;
        location / {{
            default_type application/json;
            return 200 '{{"access_token": "gateway-token", "token_type": "Bearer", "expires_in": 3600}}';
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {log.read_text() if log.exists() else 'no log'}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("nginx did not start listening within 10 s")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """nginx on a free loopback port, verifying client certificates against a fresh test CA."""
    directory = tmp_path_factory.mktemp("nginx")
    ca = pki.make_ca("Gateway test CA")
    server = pki.issue_server_certificate(ca)
    pki.write_public(directory / "ca.crt", ca.certificate_pem())
    pki.write_public(directory / "server.crt", server.certificate_pem())
    pki.write_private(directory / "server.key", server.private_key_pem())
    port = _free_port()
    config = directory / "nginx.conf"
    config.write_text(CONFIG.format(dir=directory, port=port))
    log = directory / "error.log"
    process = subprocess.Popen(
        [str(NGINX), "-c", str(config), "-e", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_listening(port, process, log)
        yield {"ca": ca, "directory": directory, "base_url": f"https://127.0.0.1:{port}/public/gw_banking/v1"}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def _client(gateway, issuer: pki.Issued, tmp_path: Path) -> BankingApiClient:
    certificate = pki.issue_client_certificate(issuer)
    cert = pki.write_public(tmp_path / "client.crt", certificate.certificate_pem())
    key = pki.write_private(tmp_path / "client.key", certificate.private_key_pem())
    settings = ClientSettings(
        base_url=gateway["base_url"],
        client_id="client-id",
        client_secret="client-secret",
        identity=IdentityMaterial(
            client_cert=cert, client_private_key=key, ca_cert=gateway["directory"] / "ca.crt"
        ),
        transport=TransportSettings(connect_timeout=5, read_timeout=5, max_retries=0),
    )
    return BankingApiClient(settings, token_stores=[])


def test_the_gateway_lets_a_certificate_it_trusts_through(gateway, tmp_path):
    with _client(gateway, gateway["ca"], tmp_path) as client:
        assert client.get_token().access_token == "gateway-token"


def test_a_certificate_from_another_chain_gets_the_not_verified_checklist(gateway, tmp_path):
    with _client(gateway, pki.make_ca("Another environment's CA"), tmp_path) as client:
        with pytest.raises(InvalidClientCertificateError) as caught:
            client.get_token()
        report = client.probe()
    assert caught.value.status_code == 400
    assert caught.value.hint == HINT_CERTIFICATE_NOT_VERIFIED
    assert "could not verify the client certificate" in caught.value.message
    assert "The SSL certificate error" in caught.value.body_excerpt
    assert (report.ok, report.step, report.hint) == (False, "TLS handshake", HINT_CERTIFICATE_NOT_VERIFIED)


def test_no_certificate_sent_gets_the_not_sent_checklist(gateway):
    # A context without a client certificate: what a connection whose certificate never got loaded sends.
    context = ssl.create_default_context(cafile=str(gateway["directory"] / "ca.crt"))
    with make_session(context, TransportSettings(max_retries=0)) as session:
        response = session.post(gateway["base_url"] + "/auth/token-v2", json={}, timeout=5)
    with pytest.raises(InvalidClientCertificateError) as caught:
        raise_for_bank_status(response, method="POST", path="/auth/token-v2")
    assert caught.value.hint == HINT_CERTIFICATE_NOT_SENT
    assert "no client certificate was sent" in caught.value.message
    assert "No required SSL certificate was sent" in caught.value.body_excerpt

"""TLS failures against the sandbox over TLS 1.2 and 1.3, through a session and through probe_tls."""

from __future__ import annotations

import datetime
import ssl
import tempfile
from pathlib import Path

import pytest
import requests

from airflow_provider_bankapi.client.probe import TlsSessionInfo, _check_answer, probe_tls
from airflow_provider_bankapi.client.settings import TransportSettings
from airflow_provider_bankapi.client.transport.adapter import make_session
from airflow_provider_bankapi.client.transport.failures import map_transport_error
from airflow_provider_bankapi.errors import (
    HINT_CLIENT_CERTIFICATE_REJECTED,
    HINT_SERVER_NOT_TRUSTED,
    ConfigurationError,
    ConnectionFailedError,
    InvalidClientCertificateError,
    TlsHandshakeError,
)
from bankapi_sandbox import pki, running

pytestmark = pytest.mark.slow  # a sandbox bank per TLS version

FAST = TransportSettings(connect_timeout=5, read_timeout=5, backoff_base=0.001, backoff_max=0.01)
BALANCE = "/accounts/123/balance"
TRIES = 10  # through requests the TLS 1.3 alert is lost on some tries (an EOF on write first): try several


@pytest.fixture(scope="module", params=[pytest.param("1.2", id="tls1.2"), pytest.param("1.3", id="tls1.3")])
def bank(request):
    with running(tls_max_version=request.param) as handle:
        handle.tls_version = request.param
        yield handle


@pytest.fixture(scope="module")
def foreign():
    """A client certificate and a CA of another environment (another chain), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bankapi-foreign-") as name:
        directory = Path(name)
        ca = pki.make_ca("Another environment CA")
        client = pki.issue_client_certificate(ca, "foreign-client")
        pki.write_public(directory / "ca.crt", ca.certificate_pem())
        pki.write_public(directory / "client.crt", client.certificate_pem())
        pki.write_private(directory / "client.key", client.private_key_pem())
        yield directory


def make_context(ca_file, certificate=None, key=None):
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        context.load_cert_chain(str(certificate), str(key))
    return context


def rejected_context(bank, foreign, kind):
    if kind == "no-certificate":
        return make_context(bank.ca_cert)
    if kind == "unknown-ca":
        return make_context(bank.ca_cert, foreign / "client.crt", foreign / "client.key")
    expired = bank.issue_client_certificate(
        "expired-client",
        not_before=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30),
        not_after=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1),
    )
    return make_context(bank.ca_cert, expired.certificate, expired.private_key)


REJECTIONS = [
    pytest.param("no-certificate", id="no-certificate"),
    pytest.param("unknown-ca", id="unknown-ca"),
    pytest.param("expired", id="expired"),
]
EXPECTED_ALERTS = {
    ("no-certificate", "1.2"): "SSLV3_ALERT_HANDSHAKE_FAILURE",
    ("no-certificate", "1.3"): "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    ("unknown-ca", "1.2"): "TLSV1_ALERT_UNKNOWN_CA",
    ("unknown-ca", "1.3"): "TLSV1_ALERT_UNKNOWN_CA",
    ("expired", "1.2"): "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    ("expired", "1.3"): "SSLV3_ALERT_CERTIFICATE_EXPIRED",
}


@pytest.mark.parametrize("kind", REJECTIONS)
def test_rejected_client_certificate_through_a_session(bank, foreign, kind):
    context = rejected_context(bank, foreign, kind)
    expected = EXPECTED_ALERTS[(kind, bank.tls_version)]
    reasons = set()
    for _ in range(TRIES):
        with make_session(context, FAST) as session, pytest.raises(requests.RequestException) as caught:
            session.get(bank.base_url + BALANCE)
        error = map_transport_error(caught.value, method="GET", path=BALANCE)
        assert type(error) is TlsHandshakeError
        assert error.client_certificate_rejected
        assert error.hint == HINT_CLIENT_CERTIFICATE_REJECTED
        reasons.add(error.reason)
    # The alert itself, or (TLS 1.3) an EOF where the alert got lost: never anything else.
    assert expected in reasons or reasons == {None}
    assert reasons <= {expected, None}


def test_untrusted_server(bank, foreign):
    context = make_context(foreign / "ca.crt", bank.client_cert, bank.client_key)
    with make_session(context, FAST) as session, pytest.raises(requests.exceptions.SSLError) as caught:
        session.get(bank.base_url + BALANCE)
    error = map_transport_error(caught.value, method="GET", path=BALANCE)
    assert type(error) is TlsHandshakeError
    # 20: issuer unknown. The sandbox's OpenSSL also sends its CA, which makes it 19 (self-signed
    # root in the chain); both say "not signed by a CA this connection trusts".
    assert error.verify_code in (19, 20)
    assert error.hint == HINT_SERVER_NOT_TRUSTED
    assert not error.client_certificate_rejected


# -- probe_tls --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", REJECTIONS)
def test_probe_recovers_the_real_alert(bank, foreign, kind):
    context = rejected_context(bank, foreign, kind)
    expected = EXPECTED_ALERTS[(kind, bank.tls_version)]
    for _ in range(TRIES):
        with pytest.raises(TlsHandshakeError) as caught:
            probe_tls(context, bank.base_url, timeout=5)
        assert caught.value.reason == expected
        assert caught.value.client_certificate_rejected


@pytest.mark.parametrize("kind", REJECTIONS)
def test_probe_recovers_the_real_alert_through_an_https_proxy(bank, foreign, kind, monkeypatch):
    # The bank's TLS inside the proxy's (urllib3's SSLTransport): the alert is read as on a plain socket.
    from test_transport_io import serving_tls_proxy

    context = rejected_context(bank, foreign, kind)
    expected = EXPECTED_ALERTS[(kind, bank.tls_version)]
    with serving_tls_proxy(bank, monkeypatch) as proxy:
        for _ in range(TRIES):
            with pytest.raises(TlsHandshakeError) as caught:
                probe_tls(context, bank.base_url, timeout=5, proxy=proxy.url)
            assert caught.value.reason == expected
            assert caught.value.client_certificate_rejected
    assert len(proxy.targets) == TRIES


def test_probe_reports_the_negotiated_session(bank):
    info = probe_tls(make_context(bank.ca_cert, bank.client_cert, bank.client_key), bank.base_url, timeout=5)
    assert info.version == {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}[bank.tls_version]
    assert info.cipher
    assert str(info).startswith(info.version + " (")


def test_probe_of_an_untrusted_server(bank, foreign):
    context = make_context(foreign / "ca.crt", bank.client_cert, bank.client_key)
    with pytest.raises(TlsHandshakeError) as caught:
        probe_tls(context, bank.base_url, timeout=5)
    assert caught.value.verify_code in (19, 20)
    assert caught.value.hint == HINT_SERVER_NOT_TRUSTED


def test_probe_of_a_port_that_does_not_speak_tls(bank):
    # The sandbox's control endpoint is plain HTTP.
    control = bank.control_url.replace("http://", "https://")
    with pytest.raises(TlsHandshakeError) as caught:
        probe_tls(make_context(bank.ca_cert, bank.client_cert, bank.client_key), control, timeout=5)
    assert caught.value.reason == "WRONG_VERSION_NUMBER"
    assert not caught.value.client_certificate_rejected


def test_probe_of_a_closed_port(bank):
    with pytest.raises(ConnectionFailedError) as caught:
        probe_tls(make_context(bank.ca_cert), "https://127.0.0.1:9/public/gw_banking/v1", timeout=5)
    assert "connection refused" in caught.value.message


def test_probe_needs_an_https_url(bank):
    with pytest.raises(ConfigurationError):
        probe_tls(make_context(bank.ca_cert), bank.base_url.replace("https://", "http://"), timeout=5)


@pytest.mark.parametrize(
    ("answer", "raises"),
    [
        pytest.param(
            b"HTTP/1.1 400 Bad Request\r\n\r\n<title>400 No required SSL certificate was sent</title>",
            True,
            id="nginx-400-no-certificate",
        ),
        pytest.param(b"HTTP/1.1 496 SSL Certificate Required\r\n\r\n", True, id="496"),
        pytest.param(b"HTTP/1.1 404 Not Found\r\n\r\n{}", False, id="404-is-fine"),
        pytest.param(b"HTTP/1.1 401 Unauthorized\r\n\r\n{}", False, id="401-is-fine"),
        pytest.param(b"HTTP/1.1 400 Bad Request\r\n\r\n{}", False, id="400-plain-is-fine"),
    ],
)
def test_probe_reads_a_gateway_certificate_page(answer, raises):
    if raises:
        with pytest.raises(InvalidClientCertificateError):
            _check_answer(answer, "/public/gw_banking/v1")
    else:
        _check_answer(answer, "/public/gw_banking/v1")


def test_session_info_is_a_frozen_value():
    info = TlsSessionInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384")
    with pytest.raises(AttributeError):
        info.version = "TLSv1.2"
    assert str(info) == "TLSv1.3 (TLS_AES_256_GCM_SHA384)"

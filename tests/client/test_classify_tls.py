"""Failures without an HTTP answer -> the error tree, on fabricated exception chains (no sockets).

The chains are wrapped the way requests wraps them: requests.exceptions.X -> MaxRetryError ->
urllib3 error -> the ssl / socket error.
"""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest
import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from airflow_provider_bankapi.client.transport.failures import classify_tls, iter_causes, map_transport_error
from airflow_provider_bankapi.errors import (
    HINT_CLIENT_CERTIFICATE_REJECTED,
    HINT_SERVER_NOT_TRUSTED,
    HINT_TLS_HANDSHAKE,
    BankingApiError,
    ConfigurationError,
    ConnectionFailedError,
    TlsHandshakeError,
)

URL = "https://bank.example:8443/public/gw_banking/v1/accounts/1/balance"


def _ssl_error(reason=None, *, cls=ssl.SSLError, verify_code=None, line=1006):
    # The message carries an _ssl.c line number on purpose: classification must not read it.
    error = cls(1, f"[SSL: {reason}] something went wrong (_ssl.c:{line})")
    if reason is not None:
        error.reason = reason
    if verify_code is not None:
        error.verify_code = verify_code
        error.verify_message = "some verify message"
    return error


def _as_requests_raises(inner, outer=requests.exceptions.SSLError):
    """inner wrapped as requests does: outer(MaxRetryError(reason=inner)) with the request attached."""
    request = requests.Request("GET", URL).prepare()
    return outer(MaxRetryError(None, URL, inner), request=request)


def _tls_chain(ssl_error):
    return _as_requests_raises(SSLError(ssl_error))


# -- TLS ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verify_code", "words"),
    [
        pytest.param(20, "not signed by a CA this connection trusts", id="20-unknown-issuer"),
        pytest.param(19, "self-signed certificate in the chain", id="19-self-signed-in-chain"),
        pytest.param(18, "self-signed", id="18-self-signed"),
        pytest.param(10, "has expired", id="10-expired"),
        pytest.param(9, "not yet valid", id="9-not-yet-valid"),
        pytest.param(62, "does not name the host", id="62-hostname-mismatch"),
        pytest.param(64, "does not name the IP address", id="64-ip-mismatch"),
        pytest.param(99, "some verify message", id="unknown-code"),
    ],
)
def test_server_not_trusted(verify_code, words):
    exc = _tls_chain(
        _ssl_error("CERTIFICATE_VERIFY_FAILED", cls=ssl.SSLCertVerificationError, verify_code=verify_code)
    )
    error = map_transport_error(exc, method="GET", path="/accounts/1/balance")
    assert type(error) is TlsHandshakeError
    assert error.verify_code == verify_code
    assert error.hint == HINT_SERVER_NOT_TRUSTED
    assert not error.client_certificate_rejected
    assert words in error.message
    assert "_ssl.c" not in str(error)


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param(reason, id=reason.lower())
        for reason in (
            "TLSV13_ALERT_CERTIFICATE_REQUIRED",
            "SSLV3_ALERT_HANDSHAKE_FAILURE",
            "TLSV1_ALERT_UNKNOWN_CA",
            "SSLV3_ALERT_CERTIFICATE_EXPIRED",
            "SSLV3_ALERT_BAD_CERTIFICATE",
            "SSLV3_ALERT_CERTIFICATE_REVOKED",
            "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
            "TLSV1_ALERT_ACCESS_DENIED",
            "TLSV1_ALERT_DECRYPT_ERROR",
        )
    ],
)
def test_client_certificate_rejected_by_alert(reason):
    error = map_transport_error(_tls_chain(_ssl_error(reason)), method="POST", path="/auth/token-v2")
    assert type(error) is TlsHandshakeError
    assert error.client_certificate_rejected
    assert error.reason == reason
    assert error.hint == HINT_CLIENT_CERTIFICATE_REJECTED
    assert error.verify_code is None


@pytest.mark.parametrize(
    "inner",
    [
        pytest.param(_ssl_error(cls=ssl.SSLEOFError), id="ssl-eof-no-reason"),
        pytest.param(_ssl_error("UNEXPECTED_EOF_WHILE_READING"), id="unexpected-eof-reason"),
        pytest.param(_ssl_error(cls=ssl.SSLZeroReturnError), id="zero-return"),
        pytest.param(ConnectionResetError(104, "Connection reset by peer"), id="reset-inside-tls"),
        pytest.param(BrokenPipeError(32, "Broken pipe"), id="broken-pipe-inside-tls"),
    ],
)
def test_eof_or_reset_in_tls_is_a_probable_rejection(inner):
    error = map_transport_error(_tls_chain(inner), method="GET", path="/x")
    assert type(error) is TlsHandshakeError
    assert error.client_certificate_rejected
    assert "most likely" in error.message
    assert error.hint == HINT_CLIENT_CERTIFICATE_REJECTED


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        pytest.param("WRONG_VERSION_NUMBER", "did not answer in TLS", id="plain-http-port"),
        pytest.param("TLSV1_ALERT_PROTOCOL_VERSION", "no TLS version in common", id="protocol-version"),
        pytest.param("SOMETHING_NEW", "SOMETHING_NEW", id="unknown-reason"),
    ],
)
def test_other_tls_failures(reason, words):
    error = map_transport_error(_tls_chain(_ssl_error(reason)), method="GET", path="/x")
    assert type(error) is TlsHandshakeError
    assert not error.client_certificate_rejected
    assert error.hint == HINT_TLS_HANDSHAKE
    assert words in error.message


def test_same_reason_same_answer_whatever_the_line_number():
    first = map_transport_error(
        _tls_chain(_ssl_error("TLSV1_ALERT_UNKNOWN_CA", line=1006)), method="GET", path="/"
    )
    second = map_transport_error(
        _tls_chain(_ssl_error("TLSV1_ALERT_UNKNOWN_CA", line=2580)), method="GET", path="/"
    )
    assert first.message == second.message


def test_raw_ssl_error_without_wrappers():
    error = classify_tls(_ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"), during="the probe")
    assert error is not None
    assert error.client_certificate_rejected


def test_classify_tls_finds_nothing_in_a_plain_failure():
    assert classify_tls(_as_requests_raises(NewConnectionError(None, "refused")), during="x") is None


def test_iter_causes_walks_requests_urllib3_and_ssl_layers():
    inner = _ssl_error("X")
    names = [type(e).__name__ for e in iter_causes(_tls_chain(inner))]
    assert names[:3] == ["SSLError", "MaxRetryError", "SSLError"]
    assert inner in list(iter_causes(_tls_chain(inner)))


def test_iter_causes_survives_cycles():
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert len(list(iter_causes(first))) == 2


# -- no TLS: connection, timeouts, proxy, URL ---------------------------------------------------------


def _refused():
    error = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return error


@pytest.mark.parametrize(
    ("exc", "words", "timed_out", "request_sent"),
    [
        pytest.param(
            _as_requests_raises(_refused(), requests.exceptions.ConnectionError),
            "could not connect to bank.example:8443: connection refused",
            False,
            False,
            id="refused",
        ),
        pytest.param(
            _as_requests_raises(
                NameResolutionError("bank.example", None, socket.gaierror(-2, "x")),
                requests.exceptions.ConnectionError,
            ),
            "bank.example) could not be resolved",
            False,
            False,
            id="dns",
        ),
        pytest.param(
            _as_requests_raises(ConnectTimeoutError(None, "timed out"), requests.exceptions.ConnectTimeout),
            "connecting to bank.example:8443 timed out",
            True,
            False,
            id="connect-timeout",
        ),
        pytest.param(
            _as_requests_raises(
                ReadTimeoutError(None, URL, "read timed out"), requests.exceptions.ConnectionError
            ),
            "did not answer in time",
            True,
            True,
            id="read-timeout-after-retries",
        ),
        pytest.param(
            requests.exceptions.ReadTimeout(ReadTimeoutError(None, URL, "x")),
            "did not answer in time",
            True,
            True,
            id="read-timeout-at-once",
        ),
        pytest.param(
            _as_requests_raises(
                ProtocolError("Connection aborted.", http.client.RemoteDisconnected("Remote end closed")),
                requests.exceptions.ConnectionError,
            ),
            "closed the connection without an answer",
            False,
            True,
            id="dropped",
        ),
        pytest.param(
            _as_requests_raises(
                ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
                requests.exceptions.ConnectionError,
            ),
            "(reset)",
            False,
            True,
            id="reset-outside-tls",
        ),
        pytest.param(
            _as_requests_raises(
                ProxyError("Unable to connect to proxy", _refused()), requests.exceptions.ProxyError
            ),
            "egress proxy could not be used: connection refused",
            False,
            False,
            id="proxy",
        ),
    ],
)
def test_connection_failures(exc, words, timed_out, request_sent):
    error = map_transport_error(exc, method="GET", path="/accounts/1/balance?cursor=abc")
    assert type(error) is ConnectionFailedError
    assert words in error.message
    assert (error.timed_out, error.request_sent) == (timed_out, request_sent)
    assert (error.method, error.path) == ("GET", "/accounts/1/balance")
    assert error.hint


def test_dropped_connection_hint_mentions_the_certificate():
    exc = _as_requests_raises(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
        requests.exceptions.ConnectionError,
    )
    assert "client certificate" in map_transport_error(exc, method="GET", path="/").hint


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(requests.exceptions.MissingSchema("no scheme"), id="missing-schema"),
        pytest.param(requests.exceptions.InvalidURL("bad"), id="invalid-url"),
    ],
)
def test_bad_url_is_a_configuration_error(exc):
    error = map_transport_error(exc, method="GET", path="/")
    assert type(error) is ConfigurationError
    assert error.field == "host"


def test_banking_api_errors_pass_through():
    original = ConfigurationError("verify= conflicts")
    assert map_transport_error(original, method="GET", path="/") is original


def test_anything_else_is_still_in_the_tree():
    assert isinstance(map_transport_error(RuntimeError("?"), method="GET", path="/"), BankingApiError)
    assert isinstance(
        map_transport_error(requests.exceptions.ChunkedEncodingError("x"), method="GET", path="/"),
        ConnectionFailedError,
    )

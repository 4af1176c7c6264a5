"""Failures without an HTTP answer (TLS, connection, timeout, proxy), mapped to the error tree.

requests wraps what went wrong several layers deep: ``requests.exceptions.SSLError`` ->
``urllib3.exceptions.MaxRetryError`` -> ``urllib3.exceptions.SSLError`` -> the ``ssl.SSLError``.
The classification walks that chain and decides on the ``ssl`` error's ``reason`` and
``verify_code`` (never on message text or ``_ssl.c`` line numbers, which change between builds).

What a refused client certificate looks like: in TLS 1.2 the handshake fails with
an alert (``SSLV3_ALERT_HANDSHAKE_FAILURE``, ``TLSV1_ALERT_UNKNOWN_CA``...); in TLS 1.3 the
handshake succeeds and the alert (``TLSV13_ALERT_CERTIFICATE_REQUIRED``) comes at the first read,
unless the write fails first with an EOF and the alert is lost. An EOF or a reset inside the TLS
layer is therefore reported as a *probable* client-certificate rejection; :func:`probe_tls`
recovers the real alert for the connection test.

A reset or close seen *outside* the TLS layer (the server closed the connection without an
answer) cannot be told apart from a dropped connection without knowing whether the connection
was fresh; it is a :class:`ConnectionFailedError` whose hint mentions the certificate.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from urllib3 import exceptions as urllib3_errors

from airflow_provider_bankapi.client.transport.deadline import AnswerDeadlineExceeded
from airflow_provider_bankapi.errors import (
    HINT_BAD_URL,
    HINT_CLIENT_CERTIFICATE_REJECTED,
    HINT_CONNECTION_FAILED,
    HINT_DROPPED,
    HINT_HEADERS_TOO_LARGE,
    HINT_PROXY,
    HINT_SERVER_NOT_TRUSTED,
    HINT_TLS_HANDSHAKE,
    ApiError,
    BankingApiError,
    ConfigurationError,
    ConnectionFailedError,
    ResponseTooLargeError,
    TlsHandshakeError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

# OpenSSL verify codes (x509_vfy.h) of a server certificate this client does not trust.
_UNTRUSTED_ISSUER = "the bank's server certificate is not signed by a CA this connection trusts (ca_cert)"
SERVER_NOT_TRUSTED = {
    2: _UNTRUSTED_ISSUER,  # unable to get issuer certificate
    18: _UNTRUSTED_ISSUER + " (it is self-signed)",
    19: _UNTRUSTED_ISSUER + " (self-signed certificate in the chain)",
    20: _UNTRUSTED_ISSUER,  # unable to get local issuer certificate
    21: _UNTRUSTED_ISSUER,  # unable to verify the first certificate
    9: "the bank's server certificate is not yet valid (is this machine's clock right?)",
    10: "the bank's server certificate has expired (or this machine's clock is wrong)",
    23: "the bank's server certificate has been revoked",
    62: "the bank's server certificate does not name the host in the Base URL",
    64: "the bank's server certificate does not name the IP address in the Base URL "
    "(use the host name the certificate names)",
}

# TLS alerts by which a server refuses the client certificate (OpenSSL reason names).
CLIENT_CERTIFICATE_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the bank requires a client certificate and none was sent",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": (
        "the bank ended the TLS handshake (handshake_failure): usually no client certificate was sent, "
        "or none it accepts"
    ),
    "TLSV1_ALERT_UNKNOWN_CA": (
        "the bank does not know the CA that issued the client certificate (unknown_ca): a certificate "
        "from another environment's chain?"
    ),
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the bank says the client certificate has expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the bank refused the client certificate (bad_certificate)",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "the bank says the client certificate has been revoked",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": (
        "the bank could not accept the client certificate (certificate_unknown)"
    ),
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "the bank does not support this client certificate",
    "TLSV1_ALERT_ACCESS_DENIED": "the bank denied access during the TLS handshake (access_denied)",
    "TLSV1_ALERT_DECRYPT_ERROR": (
        "the bank could not verify the handshake signature (decrypt_error): does the private key match "
        "the client certificate?"
    ),
}
PROBABLE_REJECTION = (
    "the bank closed the TLS connection right after the handshake without an answer: most likely it "
    "refused the client certificate (TLS 1.3 reports that late, and the alert can get lost). The "
    "connection test shows the bank's exact alert"
)
_EOF_REASONS = frozenset({"UNEXPECTED_EOF_WHILE_READING", "EOF"})
_OTHER_TLS = {
    "WRONG_VERSION_NUMBER": "the server did not answer in TLS: is the Base URL's port an HTTPS port?",
    "HTTP_REQUEST": "the server did not answer in TLS: is the Base URL's port an HTTPS port?",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common with the bank (this client offers TLS 1.2+)",
    "UNSUPPORTED_PROTOCOL": "no TLS version in common with the bank (this client offers TLS 1.2+)",
    "NO_PROTOCOLS_AVAILABLE": "no TLS version in common with the bank (this client offers TLS 1.2+)",
}


def _headers_too_large(error: BaseException) -> bool:
    # http.client's refusals while reading an answer's head: LineTooLong for a status or header line
    # past its limit, and a plain HTTPException (the class itself, raised for nothing else) for too
    # many header lines.
    return isinstance(error, http.client.LineTooLong) or type(error) is http.client.HTTPException


def iter_causes(exc: BaseException, *, limit: int = 32) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (args, ``reason``, ``original_error``, cause, context), outer first."""
    seen: set[int] = set()
    queue: list[BaseException] = [exc]
    while queue and len(seen) < limit:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [
            getattr(current, "reason", None),  # MaxRetryError; a str on ssl.SSLError, dropped below
            getattr(current, "original_error", None),  # urllib3 ProxyError
            *current.args,  # requests' and urllib3's wrappers keep the inner error in args
            current.__cause__,
            current.__context__,
        ]
        queue.extend(item for item in linked if isinstance(item, BaseException))


def _reason(error: BaseException) -> str | None:
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) else None


def classify_tls(exc: BaseException, *, during: str) -> TlsHandshakeError | None:
    """The :class:`TlsHandshakeError` for a TLS failure anywhere in ``exc``'s chain, or None.

    :param exc: what requests, urllib3 or ``ssl`` raised.
    :param during: what was being done, for the message (``"GET /accounts/1/balance"``).
    """
    causes = list(iter_causes(exc))
    for error in causes:
        verify_code = getattr(error, "verify_code", None)
        if isinstance(verify_code, int):
            detail = SERVER_NOT_TRUSTED.get(verify_code) or (
                "the bank's server certificate failed verification: "
                f"{getattr(error, 'verify_message', None) or 'verify code ' + str(verify_code)}"
            )
            return TlsHandshakeError(
                f"TLS failed for {during}: {detail}.",
                hint=HINT_SERVER_NOT_TRUSTED,
                reason=_reason(error),
                verify_code=verify_code,
            )
        if type(error).__name__ == "CertificateError":  # urllib3's own host name check
            return TlsHandshakeError(
                f"TLS failed for {during}: {SERVER_NOT_TRUSTED[62]}.", hint=HINT_SERVER_NOT_TRUSTED
            )
    ssl_errors = [error for error in causes if isinstance(error, ssl.SSLError)]
    for error in ssl_errors:
        reason = _reason(error)
        if reason in CLIENT_CERTIFICATE_ALERTS:
            return TlsHandshakeError(
                f"TLS failed for {during}: {CLIENT_CERTIFICATE_ALERTS[reason]}.",
                hint=HINT_CLIENT_CERTIFICATE_REJECTED,
                reason=reason,
                client_certificate_rejected=True,
            )
    inside_tls = bool(ssl_errors) or any(isinstance(error, urllib3_errors.SSLError) for error in causes)
    for error in causes:
        eof = isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or _reason(error) in _EOF_REASONS
        reset = inside_tls and isinstance(error, (ConnectionResetError, BrokenPipeError))
        if eof or reset:
            return TlsHandshakeError(
                f"TLS failed for {during}: {PROBABLE_REJECTION}.",
                hint=HINT_CLIENT_CERTIFICATE_REJECTED,
                reason=_reason(error),
                client_certificate_rejected=True,
            )
    for error in ssl_errors:
        reason = _reason(error)
        detail = _OTHER_TLS.get(reason or "", f"the TLS handshake failed ({reason or type(error).__name__})")
        return TlsHandshakeError(
            f"TLS failed for {during}: {detail}.", hint=HINT_TLS_HANDSHAKE, reason=reason
        )
    return None


def _where(exc: BaseException) -> str:
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if not isinstance(url, str):
        return "the bank"
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 443}" if parts.hostname else "the bank"


def _innermost_os_error(causes: list[BaseException]) -> str:
    for error in reversed(causes):
        if isinstance(error, OSError) and error.strerror:
            return str(error.strerror).lower()
    return ""


def map_transport_error(exc: BaseException, *, method: str, path: str) -> BankingApiError:
    """The error-tree error for a call that got no HTTP answer.

    :param exc: what ``session.request`` raised (a ``requests.RequestException`` usually).
    :param method: the HTTP method (for the message).
    :param path: the path called (for the message; a query string is dropped).
    """
    if isinstance(exc, BankingApiError):
        return exc
    method = method.upper()
    path = path.split("?", 1)[0]
    during = f"{method} {path}"
    causes = list(iter_causes(exc))
    where = _where(exc)

    def failed(detail: str, *, hint: str = HINT_CONNECTION_FAILED, **flags: bool) -> ConnectionFailedError:
        return ConnectionFailedError(
            f"{during} failed: {detail}.", hint=hint, method=method, path=path, **flags
        )

    if any(
        isinstance(error, (requests.exceptions.ProxyError, urllib3_errors.ProxyError)) for error in causes
    ):
        inner = _innermost_os_error(causes)
        return failed(f"the egress proxy could not be used{': ' + inner if inner else ''}", hint=HINT_PROXY)
    tls = classify_tls(exc, during=during)
    if tls is not None:
        return tls
    if any(
        isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema))
        or isinstance(error, (requests.exceptions.InvalidSchema, urllib3_errors.LocationValueError))
        for error in causes
    ):
        return ConfigurationError(
            f"{during}: the Base URL is not a valid https URL.", field="host", hint=HINT_BAD_URL
        )
    if any(isinstance(error, (urllib3_errors.NameResolutionError, socket.gaierror)) for error in causes):
        return failed(f"the host name in the Base URL ({where.rsplit(':', 1)[0]}) could not be resolved")
    connect_timeout = any(
        isinstance(error, (requests.exceptions.ConnectTimeout, urllib3_errors.ConnectTimeoutError))
        and not isinstance(error, urllib3_errors.NewConnectionError)
        for error in causes
    )
    if connect_timeout:
        return failed(f"connecting to {where} timed out", timed_out=True)
    if any(isinstance(error, urllib3_errors.NewConnectionError) for error in causes):
        inner = _innermost_os_error(causes) or "connection failed"
        return failed(f"could not connect to {where}: {inner}")
    deadline = next((error for error in causes if isinstance(error, AnswerDeadlineExceeded)), None)
    if deadline is not None:
        return failed(
            f"{deadline} (from {where}; read_timeout bounds the whole answer, not each read)",
            timed_out=True,
            request_sent=True,
        )
    if any(
        isinstance(error, (requests.exceptions.ReadTimeout, urllib3_errors.ReadTimeoutError))
        for error in causes
    ):
        return failed(f"{where} did not answer in time (read timeout)", timed_out=True, request_sent=True)
    if any(_headers_too_large(error) for error in causes):
        return ResponseTooLargeError(
            f"{during} failed: {where} answered with headers past http.client's limits (more than 100 "
            "header lines, or a line longer than 64 KiB): refused.",
            method=method,
            path=path,
            hint=HINT_HEADERS_TOO_LARGE,
        )
    if any(
        isinstance(error, (urllib3_errors.ProtocolError, http.client.HTTPException, ConnectionError))
        for error in causes
    ):
        inner = _innermost_os_error(causes)
        detail = f"the connection to {where} broke ({inner})" if inner else f"{where} closed the connection"
        return failed(f"{detail} without an answer", hint=HINT_DROPPED, request_sent=True)
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return ApiError(f"{during} was redirected too many times.", method=method, path=path)
    if isinstance(exc, requests.RequestException):
        return failed(f"no answer from {where} ({type(exc).__name__})", request_sent=True)
    return BankingApiError(f"{during} failed: {type(exc).__name__}.")

"""A TLS probe for connection tests: handshake, one small request, one read, on a raw socket.

Through requests, a TLS 1.3 client-certificate rejection often surfaces as an EOF on the first
write and the bank's alert is lost (on Python 3.11 with OpenSSL 3.0, in 2 to 40 of 40 tries). Here
the probe owns the socket: after a failed write it still reads, and the read returns the alert the
bank sent (``certificate_required``, ``unknown_ca``...). Measured against the sandbox: the alert was
recovered in 40 of 40 tries.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

from urllib3.util import make_headers
from urllib3.util.ssltransport import SSLTransport

from airflow_provider_bankapi.client.transport.answers import error_for_status
from airflow_provider_bankapi.client.transport.deadline import AnswerDeadlineExceeded, time_left
from airflow_provider_bankapi.client.transport.failures import PROBABLE_REJECTION, classify_tls
from airflow_provider_bankapi.errors import (
    HINT_BAD_URL,
    HINT_CLIENT_CERTIFICATE_REJECTED,
    HINT_CONNECTION_FAILED,
    HINT_PROXY,
    ConfigurationError,
    ConnectionFailedError,
    InvalidClientCertificateError,
    TlsHandshakeError,
    printable,
)

PROBE_READ_LIMIT = 16 * 1024


@dataclass(frozen=True)
class ProbeReport:
    """The outcome of a connection test: the step that failed (or "done") and what to check."""

    ok: bool
    step: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


@dataclass(frozen=True)
class TlsSessionInfo:
    """What the probe's handshake negotiated, for the connection test's message."""

    version: str
    cipher: str

    def __str__(self) -> str:
        return f"{self.version} ({self.cipher})"


def probe_tls(
    ssl_context: ssl.SSLContext,
    base_url: str,
    *,
    timeout: float,
    proxy: str | None = None,
    answer_timeout: float | None = None,
) -> TlsSessionInfo:
    """Shake hands with the bank using ``ssl_context``, send ``GET`` on the base path, read the answer.

    :param ssl_context: the client identity's context.
    :param base_url: the Banking API base URL (https).
    :param timeout: seconds for each step (connect, handshake, read).
    :param proxy: an http:// or https:// egress proxy to tunnel through (CONNECT), if any.
    :param answer_timeout: seconds for the whole answer once the request is sent, however slowly it
        trickles in (``timeout`` when None).
    :returns: the negotiated TLS version and cipher.
    :raises TlsHandshakeError: the bank's server is not trusted, or it refused the client certificate.
    :raises InvalidClientCertificateError: a TLS terminator answered with a "bad certificate" page.
    :raises ConnectionFailedError: the bank (or the proxy) could not be reached or did not answer.
    """
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError(
            f"The Base URL {base_url!r} is not an https URL.", field="host", hint=HINT_BAD_URL
        )
    host, port = parts.hostname, parts.port or 443
    path = parts.path or "/"
    during = f"the TLS probe of {host}:{port}"
    raw = _connect(host, port, timeout=timeout, proxy=proxy, during=during)
    try:
        try:
            tls: ssl.SSLSocket | SSLTransport
            if isinstance(raw, ssl.SSLSocket):  # through an https:// proxy: the bank's TLS inside the proxy's
                tls = SSLTransport(raw, ssl_context, server_hostname=host)
            else:
                tls = ssl_context.wrap_socket(raw, server_hostname=host)
        except (ssl.SSLError, OSError) as exc:
            raise _tls_failure(exc, during) from exc
        with tls:
            info = TlsSessionInfo(tls.version() or "TLS", (tls.cipher() or ("unknown",))[0])
            answer = _exchange(tls, host, port, path, during, answer_timeout or timeout)
    finally:
        raw.close()
    _check_answer(answer, path)
    return info


def _connect(host: str, port: int, *, timeout: float, proxy: str | None, during: str) -> socket.socket:
    """A socket to the bank: straight, or through the egress proxy's CONNECT tunnel, as urllib3 opens them
    for the calls (the same route as the tasks). Through an https:// proxy it is the proxy's TLS socket,
    which the bank's TLS then runs inside.
    """
    via = None if proxy is None else urlsplit(proxy)
    target = (host, port)
    credentials = None
    if via is not None:
        if via.scheme not in ("http", "https") or not via.hostname:
            raise ConfigurationError(
                "The egress proxy must be an http:// or https:// URL.", field="proxy", hint=HINT_PROXY
            )
        target = (via.hostname, via.port or (443 if via.scheme == "https" else 80))
        if via.username is not None:
            credentials = f"{unquote(via.username)}:{unquote(via.password or '')}"
    tunnel: socket.socket | http.client.HTTPConnection | None = None
    try:
        if via is None:
            sock = socket.create_connection(target, timeout=timeout)
        elif via.scheme == "https":
            tunnel = sock = _proxy_tls(socket.create_connection(target, timeout=timeout), target, during)
            _tunnel(sock, host, port, credentials)
        else:
            # http.client's own CONNECT tunnel, as urllib3 opens it for the calls.
            tunnel = http.client.HTTPConnection(*target, timeout=timeout)
            tunnel.set_tunnel(host, port, headers=make_headers(proxy_basic_auth=credentials))
            tunnel.connect()
            sock = tunnel.sock
            tunnel.sock = None  # the socket is the probe's from here: closing the connection keeps it
    except socket.gaierror as exc:
        raise ConnectionFailedError(
            f"{during} failed: the host name {target[0]} could not be resolved.", hint=HINT_CONNECTION_FAILED
        ) from exc
    except TimeoutError as exc:
        if tunnel is not None:
            tunnel.close()  # a tunnel that timed out leaves its socket open
        raise ConnectionFailedError(
            f"{during} failed: connecting to {target[0]}:{target[1]} timed out.",
            hint=HINT_PROXY if via is not None else HINT_CONNECTION_FAILED,
            timed_out=True,
        ) from exc
    except OSError as exc:
        if tunnel is not None:
            tunnel.close()
        if via is not None and exc.errno is None:
            # A refused tunnel is a bare OSError (the proxy's status in its text), as http.client raises
            # it; a socket failure always carries an errno.
            refusal = printable(str(exc))[:200]
            raise ConnectionFailedError(
                f"{during} failed: the egress proxy refused or dropped the tunnel ({refusal}).",
                hint=HINT_PROXY,
            ) from exc
        raise ConnectionFailedError(
            f"{during} failed: could not connect to {target[0]}:{target[1]} "
            f"({(exc.strerror or type(exc).__name__).lower()}).",
            hint=HINT_PROXY if via is not None else HINT_CONNECTION_FAILED,
        ) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _proxy_tls(sock: socket.socket, proxy: tuple[str, int], during: str) -> ssl.SSLSocket:
    """The https:// proxy's own TLS, trusted as urllib3 trusts it for the calls: the system's CAs (or
    OpenSSL's ``SSL_CERT_FILE``/``SSL_CERT_DIR``), never the client certificate, which is the bank's alone.
    """
    try:
        return ssl.create_default_context().wrap_socket(sock, server_hostname=proxy[0])
    except ssl.SSLError as exc:
        sock.close()
        reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or type(exc).__name__
        raise ConnectionFailedError(
            f"{during} failed: TLS with the egress proxy {proxy[0]}:{proxy[1]} failed "
            f"({printable(str(reason))}).",
            hint=HINT_PROXY,
        ) from exc
    except BaseException:
        sock.close()
        raise


def _tunnel(sock: ssl.SSLSocket, host: str, port: int, credentials: str | None) -> None:
    """``CONNECT host:port`` over the proxy's TLS, as http.client's ``set_tunnel`` sends it over TCP."""
    headers = {"Host": f"{host}:{port}", **make_headers(proxy_basic_auth=credentials)}
    lines = [f"CONNECT {host}:{port} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    answer = http.client.HTTPResponse(sock, method="CONNECT")
    try:
        answer.begin()
    except http.client.HTTPException as exc:
        raise OSError(f"Tunnel connection failed: {type(exc).__name__}") from exc
    finally:
        answer.close()  # its file only: the socket carries the tunnel
    if answer.status != 200:
        raise OSError(f"Tunnel connection failed: {answer.status} {answer.reason}")


def _tls_failure(exc: BaseException, during: str) -> TlsHandshakeError | ConnectionFailedError:
    classified = classify_tls(exc, during=during)
    if classified is not None:
        return classified
    if isinstance(exc, TimeoutError):
        return ConnectionFailedError(f"{during} failed: the bank did not answer in time.", timed_out=True)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        # Reset during or right after the handshake: TLS-level, whatever the socket said.
        return TlsHandshakeError(
            f"TLS failed for {during}: {PROBABLE_REJECTION}.",
            hint=HINT_CLIENT_CERTIFICATE_REJECTED,
            client_certificate_rejected=True,
        )
    return ConnectionFailedError(f"{during} failed: {type(exc).__name__}.", hint=HINT_CONNECTION_FAILED)


def _exchange(
    tls: ssl.SSLSocket | SSLTransport, host: str, port: int, path: str, during: str, answer_timeout: float
) -> bytes:
    # GET on the base path: no token, nothing happens at the bank, and any HTTP answer proves the
    # bank accepted the TLS session (401/404/405 are all fine here). GET rather than HEAD: a TLS
    # terminator's "bad client certificate" page says so in its body.
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bankapi-probe\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n"
    )
    try:
        tls.sendall(request.encode("latin-1"))
    except (ssl.SSLError, OSError) as write_error:
        # The bank may have sent an alert and closed: the write fails with EOF or a reset, the
        # alert still waits in the socket. Read it to say what really happened.
        try:
            tls.recv(1)
        except (ssl.SSLError, OSError) as read_error:
            raise _tls_failure(read_error, during) from write_error
        raise _tls_failure(write_error, during) from write_error
    answer = b""
    deadline = time.monotonic() + answer_timeout
    try:
        while len(answer) < PROBE_READ_LIMIT:
            tls.settimeout(time_left(deadline, answer_timeout))
            chunk = cast("bytes", tls.recv(4096))  # SSLTransport's annotation allows an int (recv_into's)
            if not chunk:
                break
            answer += chunk
    except (AnswerDeadlineExceeded, TimeoutError) as exc:
        # A trickled answer: each read sees progress, the whole never ends in time.
        raise ConnectionFailedError(
            f"{during} failed: {AnswerDeadlineExceeded(answer_timeout)}.",
            hint=HINT_CONNECTION_FAILED,
            timed_out=True,
        ) from exc
    except (ssl.SSLError, OSError) as exc:
        if not answer:
            raise _tls_failure(exc, during) from exc
    if not answer.startswith(b"HTTP/"):
        raise TlsHandshakeError(
            f"TLS failed for {during}: {PROBABLE_REJECTION}.",
            hint=HINT_CLIENT_CERTIFICATE_REJECTED,
            client_certificate_rejected=True,
        )
    return answer


def _check_answer(answer: bytes, path: str) -> None:
    """A TLS terminator's "bad client certificate" page (400/495/496) fails the probe."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1", errors="replace")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        return
    error = error_for_status(
        status, body.decode("utf-8", errors="replace") or status_line, method="GET", path=path
    )
    if isinstance(error, InvalidClientCertificateError):
        raise error

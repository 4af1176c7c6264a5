"""The sandbox's HTTPS server: real mutual TLS, HTTP/1.1 keep-alive, faults and latency.

A ThreadingHTTPServer whose worker threads do the TLS handshake themselves (a client that never
finishes its handshake then blocks only its own thread, not the accept loop). The client
certificate is required and verified against the sandbox CA, as the bank's gateway does; the
rules of the contract are in bank.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
import threading
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from bankapi_sandbox.bank import INTERACTION_ID, BankApi, Request, Response, error, json_text
from bankapi_sandbox.chaos import CANNED, REVOKE, CannedAnswer, canned_answer, fault_status
from bankapi_sandbox.state import HANG_LIMIT_SECONDS, TRICKLE_INTERVAL_SECONDS

if TYPE_CHECKING:
    from bankapi_sandbox.provision import Layout
    from bankapi_sandbox.state import Fault, SandboxState

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_SECONDS = 10.0
IDLE_TIMEOUT_SECONDS = 60.0  # an idle keep-alive connection is closed after this long
MAX_BODY_BYTES = 64 * 1024
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def tls_version(value: ssl.TLSVersion | str | None) -> ssl.TLSVersion | None:
    """``"1.2"``/``"1.3"``/a :class:`ssl.TLSVersion`/None -> the TLSVersion (None: no maximum)."""
    if value is None or isinstance(value, ssl.TLSVersion):
        return value
    try:
        return TLS_VERSIONS[str(value)]
    except KeyError:
        raise ValueError(f"TLS version must be 1.2 or 1.3, not {value!r}") from None


def server_context(layout: Layout, tls_max_version: ssl.TLSVersion | str | None = None) -> ssl.SSLContext:
    """TLS 1.2 and 1.3; client certificate required and verified against the sandbox CA only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    maximum = tls_version(tls_max_version)
    if maximum is not None:
        context.maximum_version = maximum
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(layout.ca_cert))
    context.load_cert_chain(str(layout.server_cert), str(layout.server_key))
    return context


class BankServer(ThreadingHTTPServer):
    """The sandbox bank's HTTPS server: accepts plain TCP, then shakes hands over TLS (client certificate
    required) in the connection's own thread.
    """

    daemon_threads = False  # joined in server_close(), so a stopped sandbox leaves no thread behind
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], *, context: ssl.SSLContext, api: BankApi, state: SandboxState
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, BankRequestHandler)
        self.context = context
        self.api = api
        self.state = state
        self._connections: set[ssl.SSLSocket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Nagle's algorithm plus delayed ACKs stall every keep-alive response ~40 ms without TCP_NODELAY.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            # The client certificate was missing, expired or from another CA (or the client left).
            self.state.count("tls_handshake_failures")
            log.debug("TLS handshake with %s failed: %s", client_address[0], getattr(exc, "reason", exc))
            return
        self.state.count("tls_connections")
        with self._connections_lock:
            self._connections.add(connection)
        try:
            connection.settimeout(IDLE_TIMEOUT_SECONDS)
            BankRequestHandler(connection, client_address, self)
        except OSError as exc:  # the client reset the connection, or the server is stopping
            log.debug("connection with %s ended: %s", client_address[0], exc)
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            connection.close()

    def close_connections(self) -> None:
        """Cut every open connection, waking threads blocked on an idle keep-alive read."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                # The plain socket's shutdown: SSLSocket.shutdown() would also drop its TLS object
                # under the feet of the thread still reading from it.
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
            except OSError:
                pass


class BankRequestHandler(BaseHTTPRequestHandler):
    """One TLS connection: HTTP/1.1 requests, one after the other, until the client closes it."""

    protocol_version = "HTTP/1.1"
    server_version = "BankingApiSandbox/1.0"
    sys_version = ""
    server: BankServer
    connection: ssl.SSLSocket

    def setup(self) -> None:
        super().setup()
        certificate = self.connection.getpeercert(binary_form=True) or b""
        # RFC 8705 thumbprint: SHA-256 over the DER certificate the client sent in this handshake.
        self.certificate_fingerprint = hashlib.sha256(certificate).hexdigest()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # Request lines hold paths and account ids only; headers (and so tokens) are never logged.
        log.debug("%s %s", self.address_string(), format % args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header follows the bank's clock, which a test may set off the real one.
        return super().date_time_string(self.server.state.now() if timestamp is None else timestamp)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The base class answers malformed requests and unknown methods with an HTML page; every
        # error of this server is JSON, like the bank's.
        phrase = HTTPStatus(code).phrase
        self._send(
            error(code, phrase.lower().replace(" ", "_"), phrase, message or explain or ""), close=True
        )

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(error(411, "length_required", "Length Required", "send a Content-Length"), close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._send(error(413, "payload_too_large", "Payload Too Large", "body too large"), close=True)
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            return
        state = self.server.state
        sent_id = self.headers.get(INTERACTION_ID)
        # Echoed as Open Finance Brasil's servers do; one of the server's own when the client sent none.
        self.interaction_id = sent_id or str(uuid.uuid4())
        if state.latency and state.stopping.wait(state.latency):
            self.close_connection = True
            return
        fault = state.take_fault(self.path)
        if fault is not None and fault.kind == REVOKE:
            state.tokens.revoke()  # then served as usual: the token it carries is no longer good
        elif fault is not None:
            if not self.path.split("?", 1)[0].endswith("/auth/token-v2"):
                state.count("api_requests")
            # Logged before it is served: a hanging request must be in the log while it hangs.
            state.record(method, self.path, fault_status(fault.kind), fault.kind, sent_id)
            self._serve_fault(fault)
            return
        request = Request(
            method=method,
            target=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            peer_ip=self.client_address[0],
            certificate_fingerprint=self.certificate_fingerprint,
        )
        response = self.server.api.handle(request)
        state.record(method, self.path, response.status, fault.kind if fault is not None else None, sent_id)
        self._send(response)

    def _serve_fault(self, fault: Fault) -> None:
        if fault.kind == "drop":
            # Close without a byte of response: the client sees a reset / "connection aborted".
            self.close_connection = True
            socket.socket.shutdown(self.connection, socket.SHUT_RDWR)
            return
        if fault.kind == "hang":
            self.server.state.stopping.wait(HANG_LIMIT_SECONDS)
            self.close_connection = True
            return
        if fault.kind == "trickle":
            self._trickle()
            return
        if fault.kind in CANNED:
            self._send_raw(canned_answer(fault.kind, fault.retry_after, self.server.state.now()))
            return
        headers = (("Retry-After", str(fault.retry_after)),) if fault.retry_after is not None else ()
        status = HTTPStatus(int(fault.kind))
        code = status.phrase.lower().replace(" ", "_")
        self._send(error(status.value, code, status.phrase, "injected fault", headers))

    def _trickle(self) -> None:
        # A 200 whose body comes one byte at a time: each read sees progress, the whole never ends
        # in any sane time. The client going away (or the sandbox stopping) ends it.
        payload = json.dumps({"trickled": "." * 40}).encode()
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        stopping = self.server.state.stopping
        try:
            for index in range(len(payload)):
                self.wfile.write(payload[index : index + 1])
                if stopping.wait(TRICKLE_INTERVAL_SECONDS):
                    return
        except OSError:
            return  # the client gave up: that is the point

    def _send_raw(self, answer: CannedAnswer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def _send(self, response: Response, *, close: bool = False) -> None:
        body = response.body
        payload = body if isinstance(body, bytes) else json_text(body).encode()  # decimals with their digits
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        interaction_id = getattr(self, "interaction_id", None)
        if interaction_id:
            self.send_header(INTERACTION_ID, interaction_id)
        for name, value in response.headers:
            self.send_header(name, value)
        if close or self.close_connection:
            # Say so when this response ends the connection (also when the client asked for it):
            # a client that is not told may pool the connection and lose its next request on it.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

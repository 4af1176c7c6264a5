"""Small HTTPS servers on 127.0.0.1, signed by a sandbox's CA, that answer from a script and record
everything that reaches them: a gateway that redirects, and the other origin it redirects to.

Both are real TLS servers a client with the sandbox's ``ca_cert`` trusts; the client certificate is
asked for but optional, so a server can tell whether the client certificate was presented to it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from bankapi_sandbox import pki
from bankapi_sandbox.provision import load_ca

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from bankapi_sandbox.runner import Sandbox

BASE_PATH = "/public/gw_banking/v1"


@dataclass(frozen=True)
class Seen:
    """One request that reached a server."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    client_certificate: bool


@dataclass(frozen=True)
class Answer:
    """``raw``: bytes sent as they are, in place of ``body`` as JSON; ``length=False``: no Content-Length,
    the body ends when the server closes the connection.
    """

    status: int = 200
    headers: Mapping[str, str] | None = None
    body: Any = None
    raw: bytes | None = None
    length: bool = True

    def encoded(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if isinstance(self.body, bytes):  # a body that is not JSON, sent as it is
            return self.body
        return b"" if self.body is None else json.dumps(self.body).encode()


TOKEN = Answer(
    200, body={"access_token": "loopback-token-" + "x" * 20, "token_type": "Bearer", "expires_in": 3600}
)


def redirect(status: int, location: str) -> Answer:
    return Answer(status, {"Location": location}, {"moved": location})


class LoopbackHttps(ThreadingHTTPServer):
    """HTTPS on 127.0.0.1 (any free port): ``answer(seen)`` decides each answer; ``seen`` and ``connections``
    record what reached it. Use as a context manager.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(
        self, sandbox: Sandbox, directory: Path, answer: Callable[[Seen], Answer] | None = None
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        issued = pki.issue_server_certificate(load_ca(sandbox.layout), ("localhost", "127.0.0.1"))
        port = self.server_address[1]
        certificate = pki.write_public(directory / f"loopback-{port}.crt", issued.certificate_pem())
        key = pki.write_private(directory / f"loopback-{port}.key", issued.private_key_pem())
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(certificate), str(key))
        self.context.verify_mode = ssl.CERT_OPTIONAL
        self.context.load_verify_locations(cafile=str(sandbox.ca_cert))
        self.answer = answer or (
            lambda seen: Answer(200, body={"available": "999999.99", "from": "elsewhere"})
        )
        self.seen: list[Seen] = []
        self.connections = 0
        self.open: set[ssl.SSLSocket] = set()  # connections a handler thread still serves
        self._open_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "", *, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    @property
    def base_url(self) -> str:
        return self.url(BASE_PATH)

    def get_request(self) -> tuple[socket.socket, Any]:
        request = super().get_request()
        self.connections += 1  # every TCP connection, before TLS: "nothing reached it" means none
        return request

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self._open_lock:
            self.open.add(connection)
        try:
            _Handler(connection, client_address, self)
        except OSError:
            pass
        finally:
            with self._open_lock:
                self.open.discard(connection)
            connection.close()

    def __enter__(self) -> LoopbackHttps:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self._thread.join()
        # As a server going down does: keep-alive connections a client left open are cut, not waited
        # out (server_close joins the handler threads, each blocked reading its idle connection).
        with self._open_lock:
            still_open = list(self.open)
        for connection in still_open:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown: SSLSocket.shutdown() would also drop its TLS object
                # under the feet of the thread reading from it.
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackHttps

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        connection: Any = self.connection
        seen = Seen(
            self.command,
            self.path,
            dict(self.headers.items()),
            body,
            client_certificate=connection.getpeercert() not in (None, {}),
        )
        self.server.seen.append(seen)
        answer = self.server.answer(seen)
        content = answer.encoded()
        self.send_response(answer.status)
        for name, value in (answer.headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        if answer.length:
            self.send_header("Content-Length", str(len(content)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on ``seen``."""

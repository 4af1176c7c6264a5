"""The control endpoint: plain HTTP + JSON on a separate loopback port, to tune a running sandbox.

It serves tests and benchmarks, never a client of the Banking API, so it is not part of the
bank's surface: it listens on 127.0.0.1 only and has no authentication (a sandbox is throwaway).

======  ==================  ==========================================================
GET     /health             ``{"base_url": ..., "settings": ...}``
GET     /counters           the counters (see :meth:`SandboxState.counters`)
POST    /counters/reset     zero the counters
GET     /settings           ``{"latency": s, "token_lifetime": s}``
POST    /settings           change either or both (JSON body with the same keys)
GET     /faults             the faults still pending
POST    /faults             ``{"path", "kind", "count"=1, "retry_after"=None, "after"=0}``
DELETE  /faults             drop every pending fault
POST    /tokens/revoke      ``{"client_id"=None}`` -> ``{"revoked": n}``
POST    /tokens/expire      ``{"client_id"=None}`` -> ``{"expired": n}``
POST    /reset              counters, faults, knobs back to their start values, tokens revoked
POST    /faults/mix         ``{"seed", "rate", "kinds", "paths"="*", "retry_after"=1}``
DELETE  /faults/mix         stop the mix
GET     /faults/mix         the mix now (or null)
POST    /requests/take      the requests logged since the last take (the log restarts)
POST    /clock              ``{"offset": s}``: the bank's clock runs this far off the real one
POST    /statements         ``{"account_id", "ready"=true}``: the account's statement answers 200, not 404
======  ==================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from bankapi_sandbox.chaos import FaultMix

if TYPE_CHECKING:
    from bankapi_sandbox.state import SandboxState


class ControlError(RuntimeError):
    """The control endpoint refused a change (its message says why) or could not be reached."""


class ControlServer(ThreadingHTTPServer):
    """The sandbox's control endpoint: plain HTTP on 127.0.0.1 that turns the knobs (faults, latency,
    token lifetime) and reads the counters of a running bank server.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, port: int, state: SandboxState, base_url: str) -> None:
        super().__init__(("127.0.0.1", port), _ControlHandler)
        self.state = state
        self.base_url = base_url
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="bankapi-sandbox-control",
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:  # shutdown() would wait forever for a loop that never ran
            self.shutdown()
            self.thread.join()
        self.server_close()


class _ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ControlServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            status, answer = self._route(method, self.path.split("?", 1)[0].rstrip("/"), body)
        except (ValueError, TypeError) as exc:
            status, answer = 400, {"error": str(exc)}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        state = self.server.state
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/health"): lambda: {"base_url": self.server.base_url, "settings": state.settings()},
            ("GET", "/counters"): state.counters,
            ("POST", "/counters/reset"): state.reset_counters,
            ("GET", "/settings"): state.settings,
            ("POST", "/settings"): lambda: self._settings(body),
            ("GET", "/faults"): state.pending_faults,
            ("POST", "/faults"): lambda: state.inject_fault(
                str(body["path"]),
                str(body["kind"]),
                body.get("count", 1),
                body.get("retry_after"),
                body.get("after", 0),
            ),
            ("DELETE", "/faults"): state.clear_faults,
            ("POST", "/tokens/revoke"): lambda: {"revoked": state.tokens.revoke(body.get("client_id"))},
            ("POST", "/tokens/expire"): lambda: {"expired": state.tokens.expire(body.get("client_id"))},
            ("POST", "/reset"): state.reset,
            **self._chaos_routes(body),
        }
        action = routes.get((method, path))
        if action is None:
            return 404, {"error": f"no control action {method} {path}"}
        try:
            result = action()
        except KeyError as exc:
            raise ValueError(f"missing field {exc}") from None
        return 200, result if result is not None else {"ok": True}

    def _chaos_routes(self, body: dict[str, Any]) -> dict[tuple[str, str], Any]:
        state = self.server.state

        def mix() -> Any:
            current = state.fault_mix()
            return dataclasses.asdict(current) if current is not None else None

        return {
            ("POST", "/faults/mix"): lambda: state.set_fault_mix(_fault_mix(body)),
            ("DELETE", "/faults/mix"): lambda: state.set_fault_mix(None),
            ("GET", "/faults/mix"): mix,
            ("POST", "/requests/take"): lambda: [dataclasses.asdict(r) for r in state.take_requests()],
            ("POST", "/clock"): lambda: state.set_clock_offset(body["offset"]),
            ("POST", "/balances"): lambda: state.set_available(
                str(body["account_id"]), body.get("available")
            ),
            ("POST", "/statements"): lambda: state.set_statement_ready(
                str(body["account_id"]), bool(body.get("ready", True))
            ),
        }

    def _settings(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - {"latency", "token_lifetime"}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        if "latency" in body:
            self.server.state.set_latency(body["latency"])
        if "token_lifetime" in body:
            self.server.state.set_token_lifetime(body["token_lifetime"])
        return self.server.state.settings()


def _fault_mix(body: dict[str, Any]) -> FaultMix:
    options = {name: body[name] for name in ("paths", "retry_after") if name in body}
    return FaultMix(int(body["seed"]), float(body["rate"]), tuple(map(str, body["kinds"])), **options)


class ControlClient:
    """Talks to a sandbox's control endpoint (in this process or another one).

    :param url: the control URL, e.g. ``http://127.0.0.1:PORT``.
    :param timeout: seconds to wait for an answer.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # No proxy: a proxy from the environment must not see (or break) loopback control calls.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise ControlError(f"sandbox control {method} {path}: {detail}") from None
        except OSError as exc:
            raise ControlError(f"sandbox control endpoint {self.url} unreachable: {exc}") from exc

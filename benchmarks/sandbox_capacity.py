"""Sandbox capacity: balance requests per second the sandbox serves on this machine.

So that later benchmarks know the sandbox is not their bottleneck. The server runs in its own
process (``python -m bankapi_sandbox serve``), as a user would run it, so the
client's Python does not share a GIL with it. Three figures:

* keep-alive: one requests Session with the client certificate, one TLS connection for all calls;
* new connection per request: ``Connection: close``, so every call pays TCP + a full mTLS handshake,
  measured twice: with requests (which also rebuilds its TLS context for every new connection) and
  with http.client reusing one SSLContext (closer to the server's own cost per handshake);
* keep-alive, 4 threads: a Session per thread (requests does not promise a thread-safe Session).

Run: ``python -m benchmarks sandbox_capacity`` (``SANDBOX_BENCH_SECONDS`` sets each phase's length).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import statistics
import threading
import time

import requests

from bankapi_sandbox import Sandbox
from benchmarks._measure import machine
from benchmarks._sandbox import serving

TITLE = "Sandbox capacity"
ABOUT = """
How many balance requests per second the sandbox bank (`sandbox/bankapi_sandbox/`) serves
on this machine, so that later benchmarks know it is not their bottleneck.

Command: `.venv/bin/python -m benchmarks sandbox_capacity` (or `make bench-sandbox`)

Setup: `init` into a temporary directory, then `serve` in its own process (so the client does not
share a GIL with it), one token fetched first, then `GET /accounts/123/balance` in a loop for 3 s
per phase (`SANDBOX_BENCH_SECONDS` changes it). The last column is the server's own
`tls_connections` counter, which shows the keep-alive phases really kept their connections. A new
mTLS connection per request costs several keep-alive requests; requests alone adds to that because it
rebuilds its TLS context (and re-reads the certificate files) for each new connection, so the "one
SSLContext" row is closer to the handshake itself. `TCP_NODELAY` is set on every accepted socket:
without it each keep-alive response would wait ~40 ms for a delayed ACK and this table would measure
Nagle's algorithm. A benchmark of the provider that stays well below the keep-alive rate, or that
counts handshakes and tokens rather than raw throughput, is not measuring the sandbox.
"""

SECONDS = float(os.environ.get("SANDBOX_BENCH_SECONDS", "3"))
THREADS = 4


def _session(sandbox: Sandbox) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the sandbox CA
    session.verify = str(sandbox.ca_cert)
    session.cert = (str(sandbox.client_cert), str(sandbox.client_key))
    return session


def _token(sandbox: Sandbox) -> str:
    connection = sandbox.connection
    body = {"client_id": connection["login"], "client_secret": connection["password"]}
    with _session(sandbox) as session:
        response = session.post(
            f"{sandbox.base_url}/auth/token-v2", json={**body, "grant_type": "client_credentials"}, timeout=10
        )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _phase(sandbox: Sandbox, token: str, *, close: bool, seconds: float) -> list[float]:
    """Balance calls for ``seconds``; return each call's duration."""
    headers = {"Authorization": f"Bearer {token}"}
    if close:
        headers["Connection"] = "close"
    url = f"{sandbox.base_url}/accounts/123/balance"
    durations: list[float] = []
    with _session(sandbox) as session:
        session.get(url, headers=headers, timeout=10).raise_for_status()  # warm-up
        deadline = time.perf_counter() + seconds
        while (start := time.perf_counter()) < deadline:
            response = session.get(url, headers=headers, timeout=10)
            durations.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"balance answered {response.status_code}")
    return durations


def _phase_one_context(sandbox: Sandbox, token: str, *, seconds: float) -> list[float]:
    """Balance calls, each on a new connection made from one SSLContext built once."""
    context = ssl.create_default_context(cafile=str(sandbox.ca_cert))
    context.load_cert_chain(str(sandbox.client_cert), str(sandbox.client_key))
    address = sandbox.base_url.split("/")[2]
    host, port = address.rsplit(":", 1)
    path = sandbox.base_url.split(address, 1)[1] + "/accounts/123/balance"
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    while (start := time.perf_counter()) < deadline:
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            json.loads(response.read())
        finally:
            connection.close()
        durations.append(time.perf_counter() - start)
        if response.status != 200:
            raise RuntimeError(f"balance answered {response.status}")
    return durations


def _report(label: str, durations: list[float], seconds: float, connections: int) -> None:
    rate = len(durations) / seconds
    p50 = statistics.median(durations) * 1000
    p99 = statistics.quantiles(durations, n=100)[98] * 1000
    print(
        f"| {label} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {len(durations):,} | {connections:,} |",
        flush=True,
    )


def main() -> None:
    print(
        f"{machine()}, requests {requests.__version__}; {SECONDS:g} s per phase; server in its own process, "
        "TLS 1.3, EC P-256.\n"
    )
    print("| phase | balance requests/s | p50 ms | p99 ms | requests | TLS connections |")
    print("|---|---:|---:|---:|---:|---:|")
    with serving() as sandbox:
        token = _token(sandbox)
        phases = (
            (
                "keep-alive, requests Session",
                lambda: _phase(sandbox, token, close=False, seconds=SECONDS),
            ),
            (
                "new connection per request, requests",
                lambda: _phase(sandbox, token, close=True, seconds=SECONDS),
            ),
            (
                "new connection per request, one SSLContext",
                lambda: _phase_one_context(sandbox, token, seconds=SECONDS),
            ),
        )
        for label, phase in phases:
            sandbox.reset_counters()
            durations = phase()
            _report(label, durations, SECONDS, sandbox.counters()["tls_connections"])

        sandbox.reset_counters()
        results: list[list[float]] = [[] for _ in range(THREADS)]
        threads = [
            threading.Thread(
                target=lambda i=i: results[i].extend(_phase(sandbox, token, close=False, seconds=SECONDS))
            )
            for i in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        merged = [d for result in results for d in result]
        _report(
            f"keep-alive, {THREADS} threads, a Session each",
            merged,
            SECONDS,
            sandbox.counters()["tls_connections"],
        )

"""Cold start: from ``BankingApiHook(...)`` to the first balance in a new task process, phase by phase,
for a connection with PEM material and one with a PKCS#12 (PFX) file.

Run: ``python -m benchmarks cold_start`` (``BENCH_RUNS``, default 5).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks._measure import RUNS, in_processes, machine, median
from benchmarks._sandbox import serving, use_connection

TITLE = "Cold start"
ABOUT = """
Where the time goes between `BankingApiHook(...)` and the first balance in a new task process, with
PEM material (`client_cert` + `client_private_key` files) and with a PKCS#12 file
(`client_pfx_secret` + `client_pfx_password`): the first task process on a host (an empty token
cache), and the next one on the same host (the token and the cache key's scrypt kept by the first).

Command: `.venv/bin/python -m benchmarks cold_start`

Each run is a process forked from a parent that has imported Airflow and the hook module (a task
process after its DAG file is parsed). Phases, each timed on its own, in order:

- **client layer imported**: requests, urllib3 and the client, which the hook defers to the first
  call (timed as the `import` that `hook.client` would do);
- **client built**: `hook.client`: reads the connection and checks its fields;
- **identity load**: `client.identity`: certificate and key (or the PKCS#12 file) parsed, checked
  against each other, and the `SSLContext` built;
- **TLS handshake**: one mTLS handshake with that `SSLContext` on a connection of its own (the token
  call below opens another and pays this again);
- **cache key**: the key the token is cached under, which binds it to the secret: one scrypt of the
  client secret (deliberately slow, so that a key found on disk or in a Variable name costs an attacker
  as much per guess), derived by the first process on a host and kept in a private file beside the
  host's tokens; the next processes read it back (one file read and an HMAC);
- **token**: `client.get_token()`: in the first process a TCP connect, the handshake, the POST, and the
  host store's lock and file; in the next one a read of the host store's file;
- **first balance**: `client.get_balance()` on the kept-alive connection.

Reading it: the largest part is importing requests and urllib3, deferred on purpose so that parsing
a DAG file never pays it. The cache key's scrypt, the price of binding cached tokens to the secret,
is paid by the first process on a host only; the next one reads the token from the host store and
makes its first TLS connection with the first balance. PKCS#12 costs more than PEM to load (the
file's key derivation and its certificate bag are decoded and checked). A process that runs several
tasks (or a triggerer) pays the imports, the identity and the cache key once; the handshake and the
token are paid once per client and per token lifetime.
"""


def _handshake(base_url: str, context: Any) -> None:
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    with socket.create_connection((host, port), timeout=10) as raw:
        context.wrap_socket(
            raw, server_hostname=host
        ).close()  # the handshake is done by wrap_socket; nothing is sent


def cold_start(arguments: tuple[str, str]) -> dict[str, float]:
    """One new task process on the "host" whose cache is the directory given: each phase's milliseconds."""
    from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

    conn_id, cache = arguments
    os.environ["XDG_CACHE_HOME"] = cache  # in this forked process only
    phases: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = (now - clock) * 1000
        clock = now

    import airflow_provider_bankapi.client.api  # noqa: F401 - what hook.client imports first

    lap("imports")
    hook = BankingApiHook(bankapi_conn_id=conn_id)
    client = hook.client
    lap("client")
    identity = client.identity
    lap("identity")
    _handshake(client.settings.base_url, identity.ssl_context())
    lap("handshake")
    client._token_key  # noqa: B018 - computed on first use: timed on its own here
    lap("key")
    client.get_token()
    lap("token")
    client.get_balance("1")
    lap("balance")
    client.close()
    phases["total"] = sum(phases.values()) - phases["handshake"]  # the extra handshake is not a task's
    return phases


def main() -> None:
    import airflow_provider_bankapi.hooks.bankapi  # noqa: F401 - imported by the DAG file's parse

    print(f"{machine()}; median of {RUNS} new processes per material.\n")
    medians: dict[str, dict[str, float]] = {}
    with serving() as sandbox, tempfile.TemporaryDirectory(prefix="bankapi-bench-hosts-") as hosts:
        materials = {
            "PEM": use_connection(sandbox, "bankapi_pem"),
            "PKCS#12": use_connection(sandbox, "bankapi_pfx", pfx=True),
        }
        # One new "host" (an empty cache) per run and material; interleaved, so that the first processes'
        # cold page cache and bursts of other work hit both alike. Then a second process on each host.
        jobs = [
            (conn_id, os.path.join(hosts, str(number)))
            for number, conn_id in enumerate(list(materials.values()) * RUNS)
        ]
        for order, runs in (
            ("first", in_processes(cold_start, jobs)),
            ("next", in_processes(cold_start, jobs)),
        ):
            for offset, label in enumerate(materials):
                own = runs[offset :: len(materials)]
                medians[f"{label} {order}"] = {phase: median(run[phase] for run in own) for phase in own[0]}
    columns = ("PEM first", "PEM next", "PKCS#12 first", "PKCS#12 next")
    print("| phase (ms, median) | PEM, first task on a host | PEM, next | PKCS#12, first | PKCS#12, next |")
    print("|---|---:|---:|---:|---:|")
    names = (
        ("imports", "client layer imported (requests, urllib3)"),
        ("client", "client built (connection read and checked)"),
        ("identity", "identity load"),
        ("handshake", "TLS handshake (alone, same SSLContext)"),
        ("key", "cache key (scrypt of the client secret, or its kept copy)"),
        ("token", "token (first: new connection, handshake, POST, host store; next: host store)"),
        ("balance", "first balance (first: kept-alive connection; next: a new one)"),
        ("total", "**`BankingApiHook(...)` to first balance** (without the lone handshake)"),
    )
    for key, label in names:
        figures = " | ".join(f"{medians[column][key]:.1f}" for column in columns)
        print(f"| {label} | {figures} |", flush=True)

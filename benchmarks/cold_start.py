"""Cold start: from ``BankingApiHook(...)`` to the first balance in a new task process, phase by phase,
for a connection with PEM material and one with a PKCS#12 (PFX) file.

Run: ``python -m benchmarks cold_start`` (``BENCH_RUNS``, default 5).
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks._measure import RUNS, fresh_host_cache, in_processes, machine, median
from benchmarks._sandbox import serving, use_connection

TITLE = "Cold start"
ABOUT = """
Where the time goes between `BankingApiHook(...)` and the first balance in a new task process, with
PEM material (`client_cert` + `client_private_key` files) and with a PKCS#12 file
(`client_pfx_secret` + `client_pfx_password`), from an empty token cache.

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
  as much per guess), paid once per connection and process;
- **token (new connection)**: `client.get_token()`: a TCP connect, the handshake, the POST, and the
  host store's lock and file;
- **first balance**: `client.get_balance()` on the kept-alive connection.

Reading it: the largest parts are importing requests and urllib3, deferred on purpose so that parsing
a DAG file never pays it, and the cache key's scrypt, the price of binding cached tokens to the secret
without storing anything a guess could be checked against cheaply; a task pays each once. PKCS#12
costs more than PEM to load (the file's key derivation and its certificate bag are decoded and
checked). A process that runs several tasks (or a triggerer) pays the imports, the identity and the
cache key once; the handshake and the token are paid once per client and per token lifetime.
"""


def _handshake(base_url: str, context: Any) -> None:
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    with socket.create_connection((host, port), timeout=10) as raw:
        context.wrap_socket(
            raw, server_hostname=host
        ).close()  # the handshake is done by wrap_socket; nothing is sent


def cold_start(conn_id: str) -> dict[str, float]:
    """One new task process: each phase's milliseconds."""
    from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

    phases: dict[str, float] = {}
    with fresh_host_cache():  # nothing cached on this "host" yet
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
    with serving() as sandbox:
        materials = {
            "PEM": use_connection(sandbox, "bankapi_pem"),
            "PKCS#12": use_connection(sandbox, "bankapi_pfx", pfx=True),
        }
        # Interleaved, so that the first processes' cold page cache and bursts of other work hit both alike.
        runs = in_processes(cold_start, list(materials.values()) * RUNS)
        for offset, label in enumerate(materials):
            own = runs[offset :: len(materials)]
            medians[label] = {phase: median(run[phase] for run in own) for phase in own[0]}
    print("| phase (ms, median) | PEM | PKCS#12 |")
    print("|---|---:|---:|")
    names = (
        ("imports", "client layer imported (requests, urllib3)"),
        ("client", "client built (connection read and checked)"),
        ("identity", "identity load"),
        ("handshake", "TLS handshake (alone, same SSLContext)"),
        ("key", "cache key (scrypt of the client secret)"),
        ("token", "token (new connection: handshake + POST + host store)"),
        ("balance", "first balance (kept-alive connection)"),
        ("total", "**`BankingApiHook(...)` to first balance** (without the lone handshake)"),
    )
    for key, label in names:
        print(f"| {label} | {medians['PEM'][key]:.1f} | {medians['PKCS#12'][key]:.1f} |", flush=True)

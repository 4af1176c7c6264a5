"""Hostile input: how long loading a client identity takes when ``ca_cert`` holds a crafted value, and
how much memory a hostile answer (a gzip bomb) costs at each entry point.

Run: ``python -m benchmarks hostile_input`` (``HOSTILE_INPUT_BYTES`` sets the size).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_bankapi.client.fields import amount, limit_of
from airflow_provider_bankapi.client.identity.identity import load_identity
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.errors import BankingApiError
from bankapi_sandbox import pki
from benchmarks._measure import in_processes, machine

BALANCE = "/accounts/123/balance"
#: Entry point -> (the path the fault is put on, the fault kind).
HOSTILE_ANSWERS = {
    "balance (200)": (BALANCE, "gzip-bomb"),
    "token answer (200)": ("/auth/token-v2", "gzip-bomb"),
    "error body (500)": (BALANCE, "gzip-bomb-500"),
    "trigger poll (200)": (BALANCE, "gzip-bomb"),
}

TITLE = "Hostile input"
ABOUT = """
The slowest `ca_cert` a connection can hold under its size limit (512 KiB): a connection field is read
in the triggerer too, and parsing holds the GIL, so every value under the limit must be parsed or
refused at once. Each value is loaded once with `load_identity` in this process; the figure is the wall
time and what the loader answered. Before PEM was scanned in one linear pass, "many BEGIN lines, no END"
took 11.5 s at 256 KiB, 135.6 s at 512 KiB and 402 s at 1 MiB, holding the GIL.

Command: `.venv/bin/python -m benchmarks hostile_input` (`HOSTILE_INPUT_BYTES`, default the limit minus one)

Reading it: every crafted value is refused in milliseconds, naming the field; the slowest value is a
legitimate one, a bundle of distinct CA certificates that fills the limit, and nearly all of its time
is OpenSSL loading them into the trust store.

The second table: the sandbox bank answers with about 1 MB of gzip that inflates to 1 GiB (its
`gzip-bomb` and `gzip-bomb-500` faults) at each entry point, in a process of its own forked after a
first, normal call; the figure is how much that process's peak RSS grew during the hostile call.
Before answers were read under a byte budget, such answers were reported to grow it by 3.1 GB (a
balance), 2.1 GB (a token answer, checked against its 1 MiB cap only after inflating) and 2.2 GB (one
trigger poll); those figures were not measured by this benchmark.
"""

SIZE = int(os.environ.get("HOSTILE_INPUT_BYTES", str(limit_of("ca_cert") - 1)))


def _fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit))).ljust(size, "\n")


def _whole(units: list[str], size: int) -> str:
    taken, used = [], 0
    for unit in units:
        if used + len(unit) > size:
            break
        taken.append(unit)
        used += len(unit)
    return "".join(taken).ljust(size, "\n")


def cases(real_certificate: str, distinct: list[str]) -> dict[str, Callable[[int], str]]:
    """Each case's value of a given size (``distinct``: a bundle of different CA certificates)."""
    return {
        "many BEGIN lines, no END": lambda n: _fill("-----BEGIN CERTIFICATE-----\n", n),
        "nested BEGINs, then their ENDs": lambda n: (
            _fill("-----BEGIN A-----\n", n // 2) + _fill("-----END A-----\n", n - n // 2)
        ),
        "one BEGIN, a huge base64 line": lambda n: (
            "-----BEGIN CERTIFICATE-----\n" + "A" * (n - 55) + "\n-----END CERTIFICATE-----\n"
        ),
        "BEGIN and an endless label": lambda n: "-----BEGIN " + "A" * (n - 11),
        "dashes only": lambda n: "-" * n,
        "NUL bytes after a BEGIN": lambda n: "-----BEGIN CERTIFICATE-----\n" + "\x00" * (n - 28),
        "the same real certificate, repeated": lambda n: _fill(real_certificate, n),
        "distinct real certificates": lambda n: _whole(distinct, n),
    }


def main() -> None:
    ca = pki.make_ca()
    client = pki.issue_client_certificate(ca)
    cert, key = client.certificate_pem().decode(), client.private_key_pem().decode()
    # EC certificates are small: this many fill the limit, the worst case for the trust store.
    distinct = [pki.make_ca(f"CA {i}").certificate_pem().decode() for i in range(SIZE // 500)]
    print(f"{machine()}; one run, {SIZE:,} bytes each.\n")
    print("| value | time | outcome |")
    print("|---|---:|---|")
    for name, make in cases(ca.certificate_pem().decode(), distinct).items():
        value = make(SIZE)
        started = time.perf_counter()
        try:
            load_identity(IdentityMaterial(client_cert=cert, client_private_key=key, ca_cert=value))
            outcome = "loaded"
        except BankingApiError as exc:
            reason = exc.message if len(exc.message) <= 90 else exc.message[:90] + "..."
            outcome = f"refused, `{type(exc).__name__}`: {reason}"
        label = f"{name} ({value.count('-----BEGIN')} certificates)" if name.startswith("distinct") else name
        print(f"| {label} | {time.perf_counter() - started:.3f} s | {outcome} |", flush=True)
    hostile_answers()


def _reset_peak_rss() -> float:
    """Make the current RSS this process's peak (Linux: ``clear_refs`` 5) and return it, in MiB: a forked
    process starts with its parent's peak, which would hide a smaller growth."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _peak_rss_mb()


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


_BANK: list[Any] = []  # the running sandbox, inherited by the forked processes (it cannot be pickled)


def _hostile_call(entry: str) -> tuple[float, str]:
    """In a forked process: one normal call, then the hostile one; (peak RSS growth in MiB, outcome)."""
    from airflow_provider_bankapi.client.api import BankingApiClient
    from airflow_provider_bankapi.hooks.bankapi import settings_from_connection
    from airflow_provider_bankapi.triggers.bankapi import BankingApiTrigger

    sandbox = _BANK[0]
    connection = {**sandbox.connection, "extra": {**sandbox.connection["extra"], "max_retries": 0}}
    os.environ["AIRFLOW_CONN_BANKAPI_DEFAULT"] = json.dumps(connection)
    fields = ("host", "login", "password", "extra", "port")
    settings, _ = settings_from_connection(*(connection[name] for name in fields))
    with (
        BankingApiClient(settings, token_stores=[]) as client,
        BankingApiClient(settings, token_stores=[]) as fresh,
    ):
        client.get_balance("123")  # imports, TLS, the token: all paid before the figure starts
        fresh.identity  # noqa: B018 - loaded now: the token case below measures the token call only
        path, kind = HOSTILE_ANSWERS[entry]
        sandbox.inject_fault(path, kind)
        before = _reset_peak_rss()
        try:
            if entry.startswith("token"):
                fresh.get_token()  # a client with no token yet
            elif entry.startswith("trigger"):
                trigger = BankingApiTrigger(bankapi_conn_id="bankapi_default", endpoint=BALANCE)
                quiet = os.open(os.devnull, os.O_WRONLY)
                os.dup2(quiet, 1)  # the trigger logs the failed poll to stdout, which is the table's
                event = asyncio.run(anext(trigger.run())).payload
                return _peak_rss_mb() - before, f"`{event['error_type']}` event"
            else:
                client.get_balance("123")
            outcome = "accepted"
        except BankingApiError as exc:
            limit = getattr(exc, "limit", None)
            outcome = f"`{type(exc).__name__}`" + (f" at {amount(limit)}" if limit else f": {exc.message}")
    return _peak_rss_mb() - before, outcome


def hostile_answers() -> None:
    from bankapi_sandbox import running

    print("\n| hostile answer (1 MB of gzip, 1 GiB inflated) | peak RSS growth | outcome |")
    print("|---|---:|---|")
    with running() as sandbox:
        _BANK[:] = [sandbox]
        for entry in HOSTILE_ANSWERS:
            sandbox.reset()
            ((growth, outcome),) = in_processes(_hostile_call, [entry])
            print(f"| {entry} | {growth:.1f} MiB | {outcome} |", flush=True)


if __name__ == "__main__":
    main()

"""Hostile input: how long loading a client identity takes when ``ca_cert`` holds a crafted value.

Run: ``python -m benchmarks hostile_input`` (``HOSTILE_INPUT_BYTES`` sets the size).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from airflow_provider_bankapi.client.identity.identity import load_identity
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.limits import limit_of
from airflow_provider_bankapi.errors import BankingApiError
from bankapi_sandbox import pki
from benchmarks._measure import machine

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


if __name__ == "__main__":
    main()

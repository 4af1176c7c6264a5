"""Hostile input: how long loading a client identity takes when ``ca_cert`` holds a crafted value.

A connection field is read in the triggerer too, and parsing holds the GIL, so every input under the
field's size limit must be parsed or refused quickly. Each case builds a value of SIZE bytes (default:
one byte under the ``ca_cert`` limit, the largest) and times ``load_identity`` on it once, in this
process; the figure is the wall time and what the loader answered.

Run: ``python -m benchmarks hostile_input`` (``HOSTILE_INPUT_BYTES`` sets SIZE).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from airflow_provider_bankapi.client.identity.identity import load_identity
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.limits import limit_of
from airflow_provider_bankapi.errors import BankingApiError
from airflow_provider_bankapi.sandbox import pki

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
    print(f"ca_cert of {SIZE} bytes, one load_identity each:\n")
    # EC certificates are small: this many fill the limit, the worst case for the trust store.
    distinct = [pki.make_ca(f"CA {i}").certificate_pem().decode() for i in range(SIZE // 500)]
    for name, make in cases(ca.certificate_pem().decode(), distinct).items():
        value = make(SIZE)
        started = time.perf_counter()
        try:
            load_identity(IdentityMaterial(client_cert=cert, client_private_key=key, ca_cert=value))
            outcome = "loaded"
        except BankingApiError as exc:
            outcome = f"refused: {type(exc).__name__}: {exc.message[:70]}"
        print(f"  {time.perf_counter() - started:8.3f} s  {name}  ({outcome})", flush=True)


if __name__ == "__main__":
    main()

"""Run the benchmarks: ``python -m benchmarks [--write FILE] [NAME ...]`` (all of them by default)."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import io
import logging
import os
import pkgutil
import sys
import time
from pathlib import Path

import benchmarks
from benchmarks._measure import RUNS, machine

# The order of BENCHMARKS.md: the sandbox's own capacity first (later figures are only meaningful
# below it), then the comparisons and the limits; a new module not listed here comes last.
ORDER = (
    "sandbox_capacity",
    "versus_http",
    "import_cost",
    "token_sharing",
    "token_day",
    "throughput",
    "triggerer_capacity",
    "cold_start",
    "memory",
)

HEADER = """# Benchmarks

Measurements, not tests. This file is generated: `make bench` runs every module of `benchmarks/`
against the sandbox bank (a real mTLS server on loopback, in its own process) and writes it
(`python -m benchmarks --write BENCHMARKS.md`); one section alone: `.venv/bin/python -m benchmarks NAME`.
Timings are medians of {runs} runs (`BENCH_RUNS`) unless a section says otherwise; a comparison is a
ratio of two figures measured in the same run, never across sections or days.

This run: {date}, {machine} at the start; {elapsed:.0f} s for all sections. A load average above
the CPU count means other work shared the machine: absolute timings then drift between runs, the
ratios much less, and counts (tokens, TLS connections) not at all.
"""


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy (what goes into the file)."""

    def __init__(self, terminal: io.TextIOBase) -> None:
        self.terminal = terminal
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.terminal.flush()
        return self.copy.write(text)


def quiet() -> None:
    """Keep logs out of the tables: the client logs each token it fetches, an operator run outside a task
    warns that it is, the secrets masker warns about short values. Airflow reads its level when first
    imported, which happens later, inside the benchmarks."""
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    for name in ("airflow_provider_bankapi", "airflow"):
        logging.getLogger(name).setLevel(logging.ERROR)


def available() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))


def run(name: str) -> str:
    """Run one benchmark; return its section (title, about, figures) as markdown."""
    module = importlib.import_module(f"benchmarks.{name}")
    print(f"## {module.TITLE}\n", flush=True)
    tee = _Tee(sys.stdout)  # type: ignore[arg-type]
    with contextlib.redirect_stdout(tee):  # type: ignore[type-var]
        module.main()
    return f"## {module.TITLE}\n\n{module.ABOUT.strip()}\n\n{tee.copy.getvalue().strip()}\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(available())}")
    parser.add_argument("--write", metavar="FILE", help="also write the sections to this markdown file")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
    quiet()
    started, at_start = time.monotonic(), machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [run(name) for name in names]
    elapsed = time.monotonic() - started
    print(f"All {len(names)} benchmark(s) took {elapsed:.0f} s.", flush=True)
    if args.write:
        header = HEADER.format(runs=RUNS, date=date, machine=at_start, elapsed=elapsed)
        Path(args.write).write_text(header + "\n" + "\n".join(sections))
        print(f"Wrote {os.path.abspath(args.write)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

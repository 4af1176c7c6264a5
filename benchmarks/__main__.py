"""Run the benchmarks: ``python -m benchmarks [--write FILE] [NAME ...]`` (all of them by default)."""

from __future__ import annotations

import argparse
import datetime
import importlib
import logging
import os
import pkgutil
import subprocess
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
    "cluster_day",
    "throughput",
    "triggerer_capacity",
    "triggerer_real",
    "cold_start",
    "memory",
    "page_walk_memory",
    "hostile_input",
    "call_path",
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


# Logs stay out of the tables: the client logs each token it fetches, an operator run outside a task
# warns that it is, the secrets masker warns about short values. Airflow reads its level at import.
QUIET = {"AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}


def quiet() -> None:
    os.environ.update(QUIET)
    for name in ("airflow_provider_bankapi", "airflow"):
        logging.getLogger(name).setLevel(logging.ERROR)


def available() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))


def section(name: str) -> tuple[str, str]:
    """A benchmark's title and its text for the file: its ``TITLE`` and ``ABOUT``, else its docstring's
    first line and the rest of it (a module written before sections had them)."""
    module = importlib.import_module(f"benchmarks.{name}")
    doc = (module.__doc__ or name).strip()
    first, _, rest = doc.partition("\n")
    return getattr(module, "TITLE", first.split(":")[0].strip()), getattr(module, "ABOUT", rest or first)


def figures(name: str) -> None:
    """Run one benchmark in this process: its figures as markdown on stdout."""
    quiet()
    importlib.import_module(f"benchmarks.{name}").main()


def run(name: str) -> str:
    """Run one benchmark in a process of its own; echo its figures; return its section as markdown.

    A process per benchmark: each starts from what a user running it alone gets (no module another one
    imported, no token another one cached, no environment another one changed).
    """
    title, about = section(name)
    print(f"## {title}\n", flush=True)
    lines = []
    command = [sys.executable, "-m", "benchmarks", "--figures", name]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, **QUIET}) as child:
        assert child.stdout is not None
        for line in child.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if child.returncode != 0:
        raise SystemExit(f"benchmark {name} failed (exit status {child.returncode})")
    return f"## {title}\n\n{about.strip()}\n\n{''.join(lines).strip()}\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(available())}")
    parser.add_argument("--write", metavar="FILE", help="also write the sections to this markdown file")
    parser.add_argument("--figures", metavar="NAME", help=argparse.SUPPRESS)  # one benchmark, in-process
    args = parser.parse_args(argv)
    if args.figures:
        figures(args.figures)
        return 0
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
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

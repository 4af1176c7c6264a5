"""Run the benchmarks: ``python -m benchmarks [--write FILE] [NAME ...]`` (all of them by default)."""

from __future__ import annotations

import argparse
import datetime
import importlib
import logging
import os
import pkgutil
import re
import subprocess
import sys
import time
from pathlib import Path

import benchmarks
from benchmarks._measure import RUNS

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
(`python -m benchmarks --write BENCHMARKS.md`); one section alone: `.venv/bin/python -m benchmarks NAME`,
and `--write BENCHMARKS.md NAME` measures that section again and replaces it here, keeping the others.
Each section says when it was measured and on what machine. Timings are medians of {runs} runs
(`BENCH_RUNS`) unless a section says otherwise; a comparison is a ratio of two figures measured in the
same run, never across sections or days. A load average above the CPU count means other work shared
the machine: absolute timings then drift between runs, the ratios much less, and counts (tokens, TLS
connections) not at all.
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
    started = time.monotonic()
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
    measured = f"Measured {now()}, in {time.monotonic() - started:.0f} s."
    return f"## {title}\n\n{about.strip()}\n\n{measured}\n\n{''.join(lines).strip()}\n"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def sections_of(text: str) -> dict[str, str]:
    """The sections of a written file by title (the text after the file's header)."""
    parts = re.split(r"(?m)^(?=## )", text)[1:]
    return {part.partition("\n")[0].removeprefix("## ").strip(): part.rstrip() + "\n" for part in parts}


def write(path: Path, sections: list[str]) -> None:
    """Write ``sections`` to the file at ``path``, keeping the file's sections of the benchmarks not run
    this time, in the order of :func:`available`; atomically, so a run killed midway leaves the last file.
    """
    kept = sections_of(path.read_text()) if path.exists() else {}
    kept.update(sections_of("\n".join(sections)))
    titles = [section(name)[0] for name in available()]
    dropped = sorted(set(kept) - set(titles))
    if dropped:
        print(f"Dropped from {path}, as no benchmark has their title: {', '.join(dropped)}.")
    body = "\n".join(kept[title] for title in titles if title in kept)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(HEADER.format(runs=RUNS) + "\n" + body)
    os.replace(temporary, path)


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
    started = time.monotonic()
    sections = [run(name) for name in names]
    print(f"All {len(names)} benchmark(s) took {time.monotonic() - started:.0f} s.", flush=True)
    if args.write:
        write(Path(args.write), sections)
        print(f"Wrote {os.path.abspath(args.write)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

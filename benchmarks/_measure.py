"""What every benchmark measures the same way: the machine line, medians and percentiles, peak RSS,
and task-like processes forked from a prepared parent.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import ssl
import statistics
import tempfile
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

T = TypeVar("T")
R = TypeVar("R")

#: Repetitions behind every median (``BENCH_RUNS``); at least 5.
RUNS = max(5, int(os.environ.get("BENCH_RUNS", "5")))


def machine() -> str:
    """One line: Python, OpenSSL, CPUs and the load average now (other work on the machine skews timings)."""
    one, five, _ = os.getloadavg()
    return (
        f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, {os.cpu_count()} CPUs, "
        f"load average {one:.1f} (5 min: {five:.1f})"
    )


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def percentile(values: Sequence[float], p: int) -> float:
    """The p-th percentile (1..99) of at least two values."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start this process's peak RSS over from its RSS now (Linux: ``/proc/self/clear_refs``, value 5).

    A forked child inherits its parent's high-water mark, so a child whose parent once used more shows
    the parent's peak, not its own: reset it first, then read :func:`peak_since_reset_mb`.
    """
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_since_reset_mb() -> float:
    """This process's peak RSS (``VmHWM``) since :func:`reset_peak_rss`, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM")


def rss_mb() -> float:
    """This process's resident set size now, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def in_processes(function: Callable[[T], R], arguments: Iterable[T], *, parallel: int = 1) -> list[R]:
    """``function(argument)`` for each argument, each in a process of its own forked from this one, at
    most ``parallel`` at a time; their results in order.

    Airflow 3 forks each task process (and each DAG parse) from a process that has imported Airflow,
    so a child pays for what it imports beyond that, as a task does. ``maxtasksperchild=1``: no process
    runs two tasks, so nothing a task keeps in memory (a token) reaches the next one.
    """
    context = multiprocessing.get_context("fork")
    with context.Pool(parallel, maxtasksperchild=1) as pool:
        return pool.map(function, arguments, chunksize=1)


def ratio(value: float, reference: float) -> str:
    """``value / reference`` as ``1.23x`` (``-`` when the reference is zero)."""
    return f"{value / reference:.2f}x" if reference else "-"


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system, every thread) a process has used so far; this one by default."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def fresh_host_cache() -> Iterator[str]:
    """An empty host token store for the block: ``XDG_CACHE_HOME`` names a new temporary directory until
    the block ends (then its old value again), so processes started inside begin cold and the token
    files go away with the directory.
    """
    saved = os.environ.get("XDG_CACHE_HOME")
    with tempfile.TemporaryDirectory(prefix="bankapi-bench-cache-") as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        try:
            yield cache
        finally:
            if saved is None:
                del os.environ["XDG_CACHE_HOME"]
            else:
                os.environ["XDG_CACHE_HOME"] = saved


def hourly(runs: int, hour: float) -> Iterator[tuple[int, bool]]:
    """Run numbers ``0 .. runs - 1``, each yielded ``hour`` seconds after the one before it (a scaled day's
    hourly runs), with whether it started late: the previous run overran its hour, so this one begins at
    once instead.
    """
    start = time.monotonic()
    for run in range(runs):
        delay = start + run * hour - time.monotonic()
        time.sleep(max(0.0, delay))
        yield run, delay < -0.1

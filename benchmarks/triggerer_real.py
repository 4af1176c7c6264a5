"""A real ``airflow triggerer`` carrying N of the provider's event triggers, next to N of the http
provider's ``HttpEventTrigger``: loop lag, supervisor and runner CPU, runner RSS, TLS connections, polls.

Run: ``python -m benchmarks triggerer_real``: the runs of :data:`PLANS`, or one run of the environment's
(see :func:`plans`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import multiprocessing
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._measure import cpu_seconds, machine, percentile
from benchmarks._sandbox import serving

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from bankapi_sandbox import Sandbox

TITLE = "A real triggerer: the provider's event triggers next to the http provider's"
ABOUT = """
A real `airflow triggerer` (its supervisor and its trigger-runner subprocess), as a deployment runs it,
carrying N triggers of one kind for a fixed window: N `BankingApiEventTrigger`s on one connection
polling the sandbox bank (mTLS), then, in a triggerer of its own, N of the http provider's
`HttpEventTrigger` polling a server-TLS endpoint (it cannot present a client certificate).

Command: `.venv/bin/python -m benchmarks triggerer_real` (the http provider comes with the `bench` extra).
Two tables: 200, 1,000 and 5,000 triggers polling every 5 s over a 60 s window, then 5,000 polling every
30 s (a deployment's pace) over 180 s; `TRIGGERER_REAL_SIZES`, `TRIGGERER_REAL_INTERVAL` and
`TRIGGERER_REAL_SECONDS` make one table of their own instead.

How the triggers get there: one DAG file with N assets, each with an `AssetWatcher` whose trigger polls
one account's balance with a threshold never met (every trigger polls until the end), plus one asset
whose watcher is a lag probe; `airflow dag-processor` registers the watchers' triggers (the DAG is
unpaused at creation) and is then stopped, and `airflow triggerer --skip-serve-logs` (capacity N + 10,
logging at Airflow's default INFO) runs them. No scheduler and no task process: the triggers are the
same a deferred sensor hands over, without N task processes on a 2-core machine. The metadata DB is
SQLite, one migrated copy per run.

The http side's endpoint: a small HTTPS server on loopback in a process of its own (Python's
`ThreadingHTTPServer`, HTTP/1.1 keep-alive, a thread per connection, like the sandbox), with the
sandbox's server certificate and no client-certificate verification, answering every
`GET /accounts/<id>/balance` with a fixed balance; the triggerer trusts the sandbox CA through
`SSL_CERT_FILE`. Its TLS connections and requests are counted as the sandbox counts its own.

Measured over the window, which starts one poke interval after the runner has started every trigger (its
"trigger ID <n> starting" lines; "start s" is the time from launching the processes to then): loop lag
from the probe (a trigger that sleeps 100 ms again and again, as the runner's watchdog does, and writes
its overshoots), p50/p99/max; the runner's "async thread was blocked" warnings (above 0.2 s) in the
triggerer's log; the runner's full (generation 2) garbage collections and its longest collection pause, of
any generation (the probe's `gc.callbacks` in the runner: a collection holds the event loop); CPU time of
the supervisor and of the runner (`/proc/<pid>/stat`) over wall time, 100 % =
one core (the supervisor's also over the window's last interval alone: what is left once start-up
requests have drained); the runner's RSS at the end; the triggerer's log bytes per second; TLS
connections accepted by the server over the whole run (start-up included); polls per interval: requests
the server answered in each poke interval of the window (median and least), and in the first interval
after all triggers started.
The load average is the machine's at the end of each run (2 cores shared with other work: above 2, other
work took CPU time).

Reading it: the TLS connections show the shared client: the provider's triggers of one connection poll
through one client and its few kept-alive connections whatever N, where the http provider's open one per
poll. The supervisor's CPU over the window holds the start-up: each watcher reads its asset state once, a
request to the supervisor, and the triggers take turns (one read at a time, off their poll loops) so that
their polls and the triggerer's own requests never wait behind thousands of reads; the last interval's
figure is what is left once they are done, and "polls in the first interval" says whether every trigger
polled on time meanwhile. Read the "blocked" warnings against the full collections of the same row: where
the two are equal, each warning was one pause of the runner's garbage collector, whose longest pause is
then the loop's longest lag. A full collection walks every object the runner holds, whichever provider's
triggers made them, and it comes once enough new objects have survived since the last one, so a busier
loop (more polls a second, or its own work, such as a TLS handshake per poll) meets it sooner and pays
more for it. The second table is the largest size at a deployment's pace: what is left of the start-up
and of the pauses when the polls are six times rarer.
"""

Plan = tuple[tuple[int, ...], float, float]  # trigger counts, poke interval s, window s
#: The runs by default: a fast poll at three sizes, then the largest at a deployment's pace (30 s) over a
#: longer window.
PLANS: tuple[Plan, ...] = (((200, 1000, 5000), 5.0, 60.0), ((5000,), 30.0, 180.0))


def plans() -> tuple[Plan, ...]:
    """The runs to make: :data:`PLANS`, or one plan of the environment's when any of its variables is set
    (``TRIGGERER_REAL_SIZES``, ``..._INTERVAL``, ``..._SECONDS``; unset ones take the first plan's values).
    """
    sizes, interval, seconds = PLANS[0]
    given = {name: os.environ.get(f"TRIGGERER_REAL_{name}") for name in ("SIZES", "INTERVAL", "SECONDS")}
    if not any(given.values()):
        return PLANS
    if given["SIZES"]:
        sizes = tuple(int(n) for n in given["SIZES"].split(","))
    return ((sizes, float(given["INTERVAL"] or interval), float(given["SECONDS"] or seconds)),)


#: A folder to keep each run's Airflow logs in (``<kind>-<N>/triggerer.log``...), for reading them after.
KEEP_LOGS = os.environ.get("TRIGGERER_REAL_LOGS")
NEVER = "1000000000000"  # a threshold no balance meets: the triggers poll until stopped
BANK_CONN = "bankapi_bench"
HTTP_CONN = "bank_https"
BLOCKED = "async thread was blocked"
STARTED = re.compile(r"trigger ID \d+ starting")
START_TIMEOUT = 600.0
REPOSITORY = Path(__file__).resolve().parents[1]

DAG_FILE = """
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetWatcher

from benchmarks._lag_probe import LagProbe

KIND, SIZE, INTERVAL, NEVER, PROBE = {kind!r}, {size!r}, {interval!r}, {never!r}, {probe!r}


def trigger(number):
    if KIND == "bankapi":
        from airflow_provider_bankapi.triggers.events import BankingApiEventTrigger

        return BankingApiEventTrigger.for_balance(
            str(number), NEVER, poke_interval=INTERVAL, bankapi_conn_id={bank_conn!r}
        )
    from airflow.providers.http.triggers.http import HttpEventTrigger

    return HttpEventTrigger(
        response_check_path="benchmarks._lag_probe.never_met",
        http_conn_id={http_conn!r},
        endpoint=f"accounts/{{number}}/balance",
        poll_interval=INTERVAL,
    )


assets = [
    Asset(f"balance_{{number}}", watchers=[AssetWatcher(name=f"balance_{{number}}", trigger=trigger(number))])
    for number in range(SIZE)
]
probe = Asset("lag_probe", watchers=[AssetWatcher(name="lag_probe", trigger=LagProbe(path=PROBE))])
with DAG(dag_id="triggerer_bench", schedule=[*assets, probe], catchup=False):
    EmptyOperator(task_id="noop")
"""


# -- the http provider's endpoint: server TLS only ---------------------------------------------------


def _https_server(ready: Any, port: Any, counts: Any, cert: str, key: str) -> None:
    """Serve fixed balances over server-only TLS until terminated; count connections and requests."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    body = json.dumps({"available": "100.00", "current": "100.00", "currency": "BRL"}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with counts.get_lock():
                counts[1] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def finish_request(self, request: Any, client_address: Any) -> None:
            # The handshake in the connection's thread, as the sandbox does, not in the accepting one.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                connection = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            with counts.get_lock():
                counts[0] += 1
            with contextlib.suppress(OSError):
                Handler(connection, client_address, self)
            connection.close()

    server = Server(("127.0.0.1", 0), Handler)
    port.value = server.server_address[1]
    ready.set()
    server.serve_forever()


@contextlib.contextmanager
def https_endpoint(sandbox: Sandbox) -> Iterator[tuple[int, Any]]:
    """The server-TLS endpoint in a forked process: its port and its counters (connections, requests)."""
    context = multiprocessing.get_context("fork")
    ready, port, counts = context.Event(), context.Value("i", 0), context.Array("l", 2)
    layout = sandbox.layout
    process = context.Process(
        target=_https_server,
        args=(ready, port, counts, str(layout.server_cert), str(layout.server_key)),
        daemon=True,
    )
    process.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the https endpoint did not start")
        yield port.value, counts
    finally:
        process.terminate()
        process.join(30)


# -- Airflow's processes --------------------------------------------------------------------------------


def _environment(home: Path, size: int, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": base64.urlsafe_b64encode(os.urandom(48)).decode(),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__TRIGGERER__CAPACITY": str(size + 10),
        # The benchmarks' runner quiets Airflow for its own tables; a deployment logs at INFO.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "XDG_CACHE_HOME": str(home / "cache"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
        **extra,
    }


def _start(home: Path, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (home / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def _registered(home: Path) -> int:
    """Trigger rows in the metadata DB (read straight from the SQLite file)."""
    with contextlib.closing(sqlite3.connect(home / "airflow.db", timeout=60)) as db:
        return int(db.execute("SELECT count(*) FROM trigger").fetchone()[0])


def _wait(
    home: Path, process: subprocess.Popen[bytes], name: str, count: Callable[[], int], want: int
) -> None:
    """Wait until ``count()`` reaches ``want``; an error with the log's end if the process exits first."""
    began = time.monotonic()
    while count() < want:
        if process.poll() is not None:
            log = (home / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"airflow {name} exited {process.returncode}:\n{log}")
        if time.monotonic() - began > START_TIMEOUT:
            raise RuntimeError(f"airflow {name}: {count()} of {want} triggers in {START_TIMEOUT:g} s")
        time.sleep(0.5)


def _started(home: Path) -> int:
    """Triggers the runner has started ("trigger ID <n> starting" in the triggerer's log)."""
    return len(STARTED.findall((home / "triggerer.log").read_text(errors="replace")))


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _lags(probe: Path, start: float, end: float) -> list[float]:
    if not probe.exists():
        return []
    lags = []
    for line in probe.read_text().splitlines():
        at, lag = (float(value) for value in line.split())
        if start <= at <= end:
            lags.append(lag)
    return lags


def _collections(probe: Path, start: float, end: float) -> tuple[int, float]:
    """The runner's full (generation 2) collections in the window, and its longest collection pause."""
    path = Path(f"{probe}.gc")
    full, longest = 0, 0.0
    for line in path.read_text().splitlines() if path.exists() else ():
        at, generation, pause = line.split()
        if start <= float(at) <= end:
            full += generation == "2"
            longest = max(longest, float(pause))
    return full, longest


def _run(
    template: Path, kind: str, size: int, interval: float, seconds: float, env: dict[str, str], counters: Any
) -> dict[str, Any]:
    """One triggerer carrying ``size`` triggers of ``kind`` polling every ``interval`` s, measured over a
    window of ``seconds``; ``counters()`` -> (TLS connections, requests).
    """
    with tempfile.TemporaryDirectory(prefix="bankapi-bench-triggerer-") as directory:
        home = Path(directory)
        (home / "dags").mkdir()
        (home / "airflow.db").write_bytes(template.read_bytes())
        probe = home / "lag-probe.txt"
        text = DAG_FILE.format(
            kind=kind,
            size=size,
            interval=interval,
            never=NEVER,
            probe=str(probe),
            bank_conn=BANK_CONN,
            http_conn=HTTP_CONN,
        )
        (home / "dags" / "triggerer_bench.py").write_text(text)
        environment = _environment(home, size, env)
        connections_before, _ = counters()
        processor = _start(home, "dag-processor", ["dag-processor"], environment)
        triggerer: subprocess.Popen[bytes] | None = None
        try:
            began = time.monotonic()
            # One after the other: SQLite takes one writer at a time, and a triggerer whose heartbeat
            # waits too long on the dag-processor's writes of thousands of triggers exits.
            _wait(home, processor, "dag-processor", lambda: _registered(home), size + 1)
            _stop(processor)  # the triggers are in the DB; its re-parsing would only add load
            triggerer = _start(home, "triggerer", ["triggerer", "--skip-serve-logs"], environment)
            _wait(home, triggerer, "triggerer", lambda: _started(home), size + 1)
            started_at = time.monotonic()
            _, requests = counters()
            time.sleep(interval)
            first_interval = counters()[1] - requests
            supervisor = triggerer.pid
            runner = max(_children(supervisor), key=_rss_mib)
            log_path = home / "triggerer.log"
            log_start = log_path.stat().st_size
            blocked_start = log_path.read_text(errors="replace").count(BLOCKED)
            cpu_start = (cpu_seconds(supervisor), cpu_seconds(runner))
            start = time.monotonic()
            polls, supervisor_by_interval = [], []
            while time.monotonic() - start < seconds - interval / 2:
                before, cpu_before, at = counters()[1], cpu_seconds(supervisor), time.monotonic()
                time.sleep(interval)
                polls.append(counters()[1] - before)
                supervisor_by_interval.append(
                    (cpu_seconds(supervisor) - cpu_before) / (time.monotonic() - at)
                )
            wall = time.monotonic() - start
            cpu_end = (cpu_seconds(supervisor), cpu_seconds(runner))
            time.sleep(1.5)  # the probe writes its ticks once a second: the window's last reach its file
            log_text = log_path.read_text(errors="replace")
            result = {
                "lags": _lags(probe, start, start + wall),
                "collections": _collections(probe, start, start + wall),
                "blocked": log_text.count(BLOCKED) - blocked_start,
                "supervisor_cpu": (cpu_end[0] - cpu_start[0]) / wall,
                "supervisor_last": supervisor_by_interval[-1],
                "runner_cpu": (cpu_end[1] - cpu_start[1]) / wall,
                "runner_rss": _rss_mib(runner),
                "log_rate": (log_path.stat().st_size - log_start) / wall,
                "tls": counters()[0] - connections_before,
                "first_interval": first_interval,
                "polls": polls,
                "start_seconds": started_at - began,
                "load": os.getloadavg()[0],
            }
        finally:
            _stop(processor)
            if triggerer is not None:
                _stop(triggerer)
            if KEEP_LOGS:
                kept = Path(KEEP_LOGS, f"{kind}-{size}-{interval:g}s")
                kept.mkdir(parents=True, exist_ok=True)
                for path in home.glob("*.log"):
                    path.replace(kept / path.name)
        return result


def _migrated(directory: Path) -> Path:
    """A migrated metadata DB, copied for each run (``airflow db migrate`` once)."""
    home = directory / "template"
    home.mkdir()
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=_environment(home, 0, {}),
        capture_output=True,
        check=True,
        timeout=300,
    )
    return home / "airflow.db"


def _row(kind: str, size: int, r: dict[str, Any]) -> str:
    lags = r["lags"]  # none when the probe never ran in the window (a loop blocked throughout)
    figures = (percentile(lags, 50), percentile(lags, 99), max(lags)) if lags else ()
    lag = " | ".join(f"{seconds * 1000:.0f}" for seconds in figures) or "- | - | -"
    polls = r["polls"] or [0]
    full, longest = r["collections"]
    return (
        f"| {kind} | {size:,} | {lag} | "
        f"{r['blocked']} | {full} / {longest * 1000:.0f} | "
        f"{r['supervisor_cpu']:.1%} / {r['supervisor_last']:.1%} | "
        f"{r['runner_cpu']:.0%} | {r['runner_rss']:.0f} | "
        f"{r['tls']:,} | {r['first_interval']:,} | {sorted(polls)[len(polls) // 2]:,} / {min(polls):,} | "
        f"{r['log_rate'] / 1024:.1f} | {r['start_seconds']:.0f} | {r['load']:.1f} |"
    )


def _table(interval: float, seconds: float) -> None:
    print(
        f"{machine()}; poke interval {interval:g} s, a window of {seconds:g} s per run, "
        f"each run a triggerer of its own.\n"
    )
    print(
        '| triggers | N | loop lag p50 ms | p99 ms | max ms | "blocked" warnings | '
        "full GCs / longest GC pause ms | supervisor CPU (window / last interval) | "
        "runner CPU | runner RSS MiB | TLS connections | polls in the first interval | "
        "polls per interval (median / least) | log KiB/s | start s | load average |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def main() -> None:
    from bankapi_sandbox import Sandbox

    with serving() as sandbox, tempfile.TemporaryDirectory(prefix="bankapi-bench-") as scratch:
        template = _migrated(Path(scratch))
        bank = sandbox.connection
        bank_env = {f"AIRFLOW_CONN_{BANK_CONN.upper()}": json.dumps(bank)}

        def bank_counters() -> tuple[int, int]:
            counters = Sandbox.attach(sandbox.dir).counters()
            return counters["tls_connections"], counters["api_requests"]

        with https_endpoint(sandbox) as (port, counts):
            http = {"conn_type": "http", "host": "https://127.0.0.1", "port": port}
            http_env = {
                f"AIRFLOW_CONN_{HTTP_CONN.upper()}": json.dumps(http),
                "SSL_CERT_FILE": str(sandbox.ca_cert),
            }
            for number, (sizes, interval, seconds) in enumerate(plans()):
                if number:
                    print()
                _table(interval, seconds)
                for size in sizes:
                    ours = _run(template, "bankapi", size, interval, seconds, bank_env, bank_counters)
                    print(_row("BankingApiEventTrigger (mTLS, sandbox)", size, ours), flush=True)
                    theirs = _run(
                        template, "http", size, interval, seconds, http_env, lambda: (counts[0], counts[1])
                    )
                    print(_row("HttpEventTrigger (server TLS)", size, theirs), flush=True)

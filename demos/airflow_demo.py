"""``make demo``: a real Airflow runs the hourly balances example DAG against a local sandbox bank.

::

    python -m demos.airflow_demo [--state .demo] [--dags dags_examples]    # from the repository root

Everything lives under the state directory, wiped at the start so the demo can be run again:
``airflow/`` (AIRFLOW_HOME with its SQLite DB), ``bank/`` (the sandbox's CA, certificates and
connection files), ``output/`` (what the DAG writes), ``cache/`` (the token cache) and ``logs/``
(the full output of every command, for when something fails). The steps:

1. ``airflow db migrate`` into that AIRFLOW_HOME;
2. the sandbox provisioned, then started as ``python -m bankapi_sandbox serve DIR``
   in the background (its first stdout line is the base URL);
3. ``airflow dags test bankapi_hourly_balances`` with the connection from ``DIR/connection.json`` as
   ``AIRFLOW_CONN_BANKAPI_DEFAULT``, the DAGs folder ``dags_examples/`` and the Variable
   ``bankapi_output_base`` pointing into ``output/``;
4. the written file's path and rows, and how many tokens the bank issued;
5. the sandbox stopped, also when a step fails or the demo is interrupted.

The Airflow commands see none of the caller's ``AIRFLOW*`` variables, so the demo never touches
another Airflow installation's database or configuration.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bankapi_sandbox.provision import Layout, init

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DAG_ID = "bankapi_hourly_balances"
STATE_PARTS = ("airflow", "bank", "output", "cache", "logs")
SERVE_START_TIMEOUT = 30.0


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and where its full output is."""


def demo_environment(state: Path, dags: Path) -> dict[str, str]:
    """The environment of the Airflow commands: this one without Airflow settings or proxies, plus the
    demo's AIRFLOW_HOME, DAGs folder, output Variable and token cache.
    """
    inherited = {
        name: value
        for name, value in os.environ.items()
        # A proxy would carry the loopback mTLS calls elsewhere; an AIRFLOW* variable would point the
        # demo at the caller's own Airflow.
        if not name.startswith("AIRFLOW") and not name.lower().endswith("_proxy")
    }
    home = state / "airflow"
    return {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "AIRFLOW_VAR_BANKAPI_OUTPUT_BASE": f"file://{state / 'output'}",
        "XDG_CACHE_HOME": str(state / "cache"),  # the host token store, kept inside the demo's state
    }


def reset_state(state: Path) -> None:
    """Remove what a previous run left (only the demo's own sub-directories), then recreate them."""
    for part in STATE_PARTS:
        shutil.rmtree(state / part, ignore_errors=True)
    for part in STATE_PARTS:
        (state / part).mkdir(parents=True)


def run_logged(command: Sequence[str], env: Mapping[str, str], log: Path, timeout: float = 600) -> None:
    """Run a command with its output in ``log``; a non-zero exit is a DemoError showing the log's tail."""
    with log.open("w") as handle:
        result = subprocess.run(
            list(command),
            env=dict(env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        raise DemoError(f"`{' '.join(command[2:])}` exited {result.returncode}.\n{tail(log)}")


def tail(log: Path, lines: int = 25) -> str:
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(["--- last lines of " + str(log) + " ---", *text])


def start_sandbox(bank: Path, env: Mapping[str, str], log: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``serve`` in the background; return the process and the base URL from its first line."""
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "bankapi_sandbox", "serve", str(bank)],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert process.stdout is not None
    first_line: list[str] = []
    # readline() has no timeout: read in a thread, wait for it with one.
    reader = threading.Thread(target=_read_line, args=(process.stdout, first_line), daemon=True)
    reader.start()
    reader.join(SERVE_START_TIMEOUT)
    url = first_line[0].strip() if first_line else ""
    if not url.startswith("https://"):
        stop(process)
        raise DemoError(f"The sandbox did not start within {SERVE_START_TIMEOUT:.0f} s.\n{tail(log)}")
    # Keep draining its stdout, so that a chatty server can never block on a full pipe.
    threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
    return process, url


def _read_line(stream: IO[str], into: list[str]) -> None:
    into.append(stream.readline())


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM (the sandbox stops cleanly on it), then SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def tokens_issued(bank: Path) -> int | None:
    """What the running sandbox's counters say (None if it cannot be asked)."""
    from bankapi_sandbox.runner import Sandbox

    try:
        return int(Sandbox.attach(bank).counters()["tokens_issued"])
    except Exception:  # the count is a nicety: never let it fail the demo
        return None


def run(state: Path, dags: Path, out: IO[str]) -> Path:
    """The whole demo; returns the file the DAG wrote."""
    if not (dags / f"{DAG_ID}.py").is_file():
        raise DemoError(f"{dags / (DAG_ID + '.py')} not found: run the demo from the project's root.")
    started = time.monotonic()
    reset_state(state)
    bank, logs = state / "bank", state / "logs"
    env = demo_environment(state, dags)
    airflow = [sys.executable, "-m", "airflow"]
    print(f"Banking API provider demo (state in {state}/, logs in {logs}/)", file=out)

    step = time.monotonic()
    run_logged([*airflow, "db", "migrate"], env, logs / "db-migrate.log")
    print(f"[1/4] Airflow metadata DB ready ({time.monotonic() - step:.0f} s)", file=out, flush=True)

    init(bank)
    process, base_url = start_sandbox(bank, env, logs / "sandbox.log")
    try:
        print(f"[2/4] Sandbox bank listening at {base_url}", file=out, flush=True)
        env["AIRFLOW_CONN_BANKAPI_DEFAULT"] = Layout(bank).connection.read_text()

        step = time.monotonic()
        run_logged([*airflow, "dags", "test", DAG_ID], env, logs / "dags-test.log")
        written = sorted((state / "output").rglob("*.jsonl"))
        if len(written) != 1:
            raise DemoError(f"{DAG_ID} wrote {len(written)} files, not one.\n{tail(logs / 'dags-test.log')}")
        path = written[0]
        print(f"[3/4] airflow dags test {DAG_ID}: done ({time.monotonic() - step:.0f} s)", file=out)

        lines = path.read_text().splitlines()
        print(f"[4/4] It wrote {len(lines)} balances to {path}:", file=out)
        for line in lines:
            print(f"      {line}", file=out)
        issued = tokens_issued(bank)
        if issued is not None:
            print(f"      The bank issued {issued} token(s) for {len(lines)} balance calls.", file=out)
    finally:
        stop(process)
    print(f"Sandbox stopped. Demo done in {time.monotonic() - started:.0f} s.", file=out)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demos.airflow_demo")
    parser.add_argument("--state", default=".demo", help="the demo's working directory (default .demo)")
    parser.add_argument("--dags", default="dags_examples", help="the DAGs folder (default dags_examples)")
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, `kill`) ends the demo through the same `finally` as Ctrl-C: the sandbox stops.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(Path(args.state).resolve(), Path(args.dags).resolve(), sys.stdout)
    except DemoError as exc:
        print(f"Demo failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

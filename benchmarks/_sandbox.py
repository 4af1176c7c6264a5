"""The sandbox bank in its own process for benchmarks, so the client measured does not share its GIL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bankapi_sandbox import Sandbox, provision

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def serving(*, latency: float = 0.0, expires_in: int = 3600) -> Iterator[Sandbox]:
    """Provision a sandbox into a temporary directory, ``serve`` it in a child process, yield a handle.

    :param latency: seconds the sandbox adds before every response (a bank farther away than loopback).
    :param expires_in: lifetime of the tokens it issues, in seconds.
    """
    with tempfile.TemporaryDirectory(prefix="bankapi-bench-") as directory:
        provision.init(directory)
        command = [sys.executable, "-m", "bankapi_sandbox", "serve", directory]
        command += ["--latency", str(latency), "--expires-in", str(expires_in)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert process.stdout is not None
            process.stdout.readline()  # the base URL: the server listens
            process.stdout.readline()  # the control URL
            yield Sandbox.attach(Path(directory))
        finally:
            process.terminate()
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()


def use_connection(
    sandbox: Sandbox, conn_id: str = "bankapi_default", *, pfx: bool = False, **extra: object
) -> str:
    """Expose the sandbox's connection (PEM, or PKCS#12 with ``pfx``) as ``AIRFLOW_CONN_<ID>`` in this
    process's environment, with ``extra`` added to its extras (``cache_scope="off"``...); return the id.

    Processes forked or started afterwards see it too, as Airflow tasks see ``AIRFLOW_CONN_*`` variables.
    """
    connection = sandbox.connection_pfx if pfx else sandbox.connection
    connection["extra"] = {**connection["extra"], **extra}
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
    return conn_id


def server_pid(sandbox: Sandbox) -> int:
    """The process id of the ``serve`` process (it writes it beside its address)."""
    return int(json.loads(sandbox.layout.runtime.read_text())["pid"])

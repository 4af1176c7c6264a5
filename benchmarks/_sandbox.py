"""The sandbox bank in its own process for benchmarks, so the client measured does not share its GIL."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_bankapi.sandbox import Sandbox, provision

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def serving() -> Iterator[Sandbox]:
    """Provision a sandbox into a temporary directory, ``serve`` it in a child process, yield a handle."""
    with tempfile.TemporaryDirectory(prefix="bankapi-bench-") as directory:
        provision.init(directory)
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_bankapi.sandbox", "serve", directory],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
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

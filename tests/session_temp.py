"""The test session's own temporary directory: ``TMPDIR`` for the session and every process it starts.

Imported first (``tests/airflow_harness.py`` does, before it makes AIRFLOW_HOME), so that everything the
suite writes to "the temp directory" lands in a fresh folder of its own, removed when the session ends
(``tests/conftest.py``). The leak check looks there only: other programs on the machine may put what
they like in the shared temp directory, and nothing the suite leaves behind hides among their files.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

# Named outside the prefixes the leak check looks for, so that it never counts itself.
SESSION_TEMP = Path(tempfile.mkdtemp(prefix="pytest-session-bankapi-"))
os.environ["TMPDIR"] = str(SESSION_TEMP)  # for the processes the tests start
tempfile.tempdir = str(SESSION_TEMP)  # gettempdir() caches its first answer: this process's


def remove() -> None:
    """Delete the session's temp directory (kept with ``BANKAPI_KEEP_AIRFLOW_HOME``, which lives in it)."""
    if os.environ.get("BANKAPI_KEEP_AIRFLOW_HOME"):
        sys.stderr.write(f"\nThe session's temp directory kept: {SESSION_TEMP}\n")
        return
    shutil.rmtree(SESSION_TEMP, ignore_errors=True)

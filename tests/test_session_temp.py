"""The session's own temp directory (tests/session_temp.py): this process and the ones it starts use it."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import airflow_harness
import pytest
from session_temp import SESSION_TEMP


def test_the_session_writes_into_a_temp_directory_of_its_own():
    assert tempfile.gettempdir() == str(SESSION_TEMP)
    assert airflow_harness.AIRFLOW_HOME.parent == SESSION_TEMP


@pytest.mark.slow  # starts a process
def test_processes_the_tests_start_inherit_it():
    code = "import tempfile; print(tempfile.gettempdir())"
    started = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert started.stdout.strip() == str(SESSION_TEMP)

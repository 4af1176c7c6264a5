"""``make demo-curl`` as a user runs it: a subprocess from the repository root, the real curl binary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a sandbox and curl in a subprocess

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_banks_curl_commands(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "demos.curl_demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert "--cert client.crt" in output
    assert "--cacert ca.crt" in output
    assert '"token_type": "Bearer"' in output
    assert '"account_id": "123"' in output
    connection = json.loads((tmp_path / "demo" / "connection.json").read_text())
    assert connection["password"] not in output  # the client_secret is never printed
    assert output.rstrip().endswith("Sandbox stopped.")

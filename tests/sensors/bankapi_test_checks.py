"""Check functions for the sensor tests, importable by dotted path as a triggerer would import them.

State lives in files named by environment variables, so that the worker's first look and the
trigger's polls (threads, or another process) count together.
"""

from __future__ import annotations

import os
from pathlib import Path


def _look() -> int:
    counter = Path(os.environ["BANKAPI_TEST_LOOKS"])
    looks = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(looks))
    return looks


def true_on_third_look(response) -> bool:
    """False, False, then True: the worker's look and the trigger's first poll wait, the second ends it."""
    return _look() >= 3


def deactivate_credential_on_first_look(response) -> bool:
    """The bank deactivates the credential while the sensor waits (its first look finds no funds)."""
    from bankapi_sandbox import Sandbox

    if _look() == 1:
        sandbox = Sandbox.attach(os.environ["BANKAPI_TEST_SANDBOX_DIR"])
        sandbox.core.deactivate(sandbox.client_id)
    return False

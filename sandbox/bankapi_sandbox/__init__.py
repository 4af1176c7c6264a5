"""A local Banking API with real mutual TLS, for the demo, the test suite and users' own tests.

:func:`running` provisions and runs one in this process; the ``bankapi_sandbox`` pytest fixture
(pytest_plugin.py) wraps it; ``python -m bankapi_sandbox`` is the CLI.
"""

from __future__ import annotations

from bankapi_sandbox.runner import FaultKind, Sandbox, running

__all__ = ["FaultKind", "Sandbox", "running"]
__version__ = "0.1.0"

"""A local Banking API with real mutual TLS, for the demo, the test suite and users' own tests.

:func:`running` provisions and runs one in this process; the ``bankapi_sandbox`` pytest fixture
(pytest_plugin.py) wraps it; ``python -m airflow_provider_bankapi.sandbox`` is the CLI.
"""

from __future__ import annotations

from airflow_provider_bankapi.sandbox.runner import Sandbox, running

__all__ = ["Sandbox", "running"]

"""The ``bankapi_sandbox`` pytest fixture: a local Banking API with real mutual TLS, one per test.

Installed with the provider (entry point ``pytest11``), so a user's own test suite can write::

    def test_my_dag(bankapi_sandbox):
        os.environ["AIRFLOW_CONN_BANKAPI_DEFAULT"] = bankapi_sandbox.connection_json
        ...
        assert bankapi_sandbox.counters()["tokens_issued"] == 1

Options for one test go on a marker: ``@pytest.mark.bankapi_sandbox(expires_in=5, latency=0.1)``
(the keyword arguments of :func:`bankapi_sandbox.running`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bankapi_sandbox.runner import Sandbox

MARKER = "bankapi_sandbox"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options for the bankapi_sandbox fixture "
        "(expires_in, latency, tls_max_version; see bankapi_sandbox.running)",
    )


@pytest.fixture
def bankapi_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A freshly provisioned sandbox bank, running for this test only, removed afterwards."""
    # Imported here, not at module level: pytest loads this plugin in every session of every
    # project that installs the provider, and most of them never ask for the fixture.
    from bankapi_sandbox.runner import running

    marker = request.node.get_closest_marker(MARKER)
    options = dict(marker.kwargs) if marker else {}
    with running(**options) as sandbox:
        yield sandbox

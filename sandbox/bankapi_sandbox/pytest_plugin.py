"""The ``bankapi_sandbox`` pytest fixture: a local Banking API with real mutual TLS, one per test.

Installed with the provider (entry point ``pytest11``), so a user's own test suite can write::

    def test_my_dag(bankapi_sandbox):
        os.environ["AIRFLOW_CONN_BANKAPI_DEFAULT"] = bankapi_sandbox.connection_json
        ...
        assert bankapi_sandbox.counters()["tokens_issued"] == 1

Options for one test go on a marker: ``@pytest.mark.bankapi_sandbox(expires_in=5, latency=0.1)``
(the keyword arguments of :func:`bankapi_sandbox.running`).

A DAG file run with ``dag.test()`` against the sandbox, in one step: set ``bankapi_airflow_home =
isolated`` in the project's pytest configuration (the session gets an Airflow of its own: a temporary
AIRFLOW_HOME, SQLite, its own DAGs folder), then::

    def test_my_dag(bankapi_dag_test):
        result = bankapi_dag_test("dags/my_dag.py", conf={"account_id": "123"})
        assert result.state == "success"
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bankapi_sandbox.dag_test import DagTest
    from bankapi_sandbox.runner import Sandbox

MARKER = "bankapi_sandbox"
HOME_OPTION = "bankapi_airflow_home"
_HOME = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        HOME_OPTION,
        "'isolated': the session gets an Airflow of its own (a temporary AIRFLOW_HOME with SQLite) for "
        "the bankapi_dag_test fixture; empty (default): the environment's Airflow, untouched",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options for the bankapi_sandbox fixture "
        "(expires_in, latency, tls_max_version; see bankapi_sandbox.running)",
    )
    home = str(config.getini(HOME_OPTION)).strip()
    if home == "isolated":
        from bankapi_sandbox.dag_test import AirflowAlreadyImported, isolate

        try:
            config.stash[_HOME] = isolate()
        except AirflowAlreadyImported as exc:
            raise pytest.UsageError(str(exc)) from None
    elif home:
        raise pytest.UsageError(f"{HOME_OPTION} must be 'isolated' or empty; got {home!r}.")


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


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


@pytest.fixture
def bankapi_dag_test(request: pytest.FixtureRequest, bankapi_sandbox: Sandbox) -> DagTest:
    """``bankapi_dag_test(dag_file, dag_id=None, conf=None)``: the DAG run with ``dag.test()`` against this
    test's sandbox, as the connection ``bankapi_default``; needs ``bankapi_airflow_home = isolated``.
    """
    from bankapi_sandbox.dag_test import DagTest

    home = request.config.stash.get(_HOME, None)
    if home is None:
        raise pytest.UsageError(
            f"bankapi_dag_test needs an Airflow of the session's own: set {HOME_OPTION} = isolated in the "
            "project's pytest configuration ([tool.pytest.ini_options] in pyproject.toml, or pytest.ini)."
        )
    return DagTest(bankapi_sandbox, home)

"""Shared test configuration.

The first import below gives the session its own AIRFLOW_HOME before anything imports Airflow
(see ``tests/airflow_harness.py``). Tests marked ``@pytest.mark.airflow`` get the session's
metadata DB, migrated once by the first of them; the others never pay for it.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

# First: sets AIRFLOW_HOME and the rest of the session's configuration before Airflow is imported.
import airflow_harness
import pytest
import session_temp
from hypothesis import HealthCheck, settings

# Properties are about values, not time: hypothesis's 200 ms deadline per example flakes on a loaded
# 2-core machine (the benchmarks measure speed), so no example is failed for being slow.
settings.register_profile("bankapi", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("bankapi")

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

SANDBOX_PLUGIN = "bankapi_sandbox.pytest_plugin"


def pytest_configure(config: pytest.Config) -> None:
    # The bankapi_sandbox fixture comes from the sandbox distribution's pytest11 entry point once it
    # is installed; register it here only when it is not (plugin autoload disabled), since registering
    # the same module twice is an error in pytest.
    plugin = importlib.import_module(SANDBOX_PLUGIN)
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, SANDBOX_PLUGIN)


# The fast lane (``pytest --fast``, ``make test-fast``): only the pure tests, those that start no sandbox
# bank, no process and no Airflow metadata DB. A test is ``slow`` when it is marked ``airflow``, asks for
# one of these fixtures (directly or through another fixture), or is marked ``@pytest.mark.slow`` by
# hand. The lane keeps itself honest: in it, starting a process or a sandbox fails the test with a
# message saying to mark it, so a new slow test cannot slip in unnoticed.
SLOW_FIXTURES = frozenset({"bankapi_sandbox", "sandbox", "airflow_db", "airflow_api_server"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true", help="run only the pure tests (the fast lane)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("airflow") is not None or fixtures & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
    if config.getoption("fast"):
        slow = [item for item in items if item.get_closest_marker("slow") is not None]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if item.get_closest_marker("slow") is None]


def _not_in_the_fast_lane(what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"This test {what}: mark it @pytest.mark.slow (the fast lane runs pure tests).")

    return refuse


@pytest.fixture(scope="session", autouse=True)
def _fast_lane_stays_pure(request: pytest.FixtureRequest) -> Iterator[None]:
    if not request.config.getoption("fast"):
        yield
        return
    from bankapi_sandbox.runner import SandboxServers

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", _not_in_the_fast_lane("starts a process"))
        patch.setattr(SandboxServers, "start", _not_in_the_fast_lane("starts a sandbox bank"))
        yield


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_TEMP_BEFORE] = _our_temp_entries()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # The provider and its sandbox promise to leave nothing in the temp directory (key material
    # included): whatever the suite made there with their prefixes and did not remove fails the run.
    # That directory is the session's own (tests/session_temp.py): what other programs on the
    # machine put in the shared one is not looked at.
    airflow_harness.remove_home()
    kept = {airflow_harness.AIRFLOW_HOME.name} if os.environ.get("BANKAPI_KEEP_AIRFLOW_HOME") else set()
    left = sorted(_our_temp_entries() - session.stash.get(_TEMP_BEFORE, set()) - kept)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"Left behind in {tempfile.gettempdir()}: {', '.join(left)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    airflow_harness.remove_home()
    session_temp.remove()


_TEMP_BEFORE = pytest.StashKey[set[str]]()
_TEMP_PREFIXES = ("bankapi-", "airflow-provider-bankapi")


def _our_temp_entries() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith(_TEMP_PREFIXES)}


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The session's migrated metadata DB (migrated on first use); the value is the AIRFLOW_HOME path."""
    airflow_harness.ensure_db()
    return airflow_harness.AIRFLOW_HOME


@pytest.fixture(autouse=True)
def _airflow_marker(request: pytest.FixtureRequest) -> None:
    # Requested lazily so that only tests marked `airflow` pay for the migration.
    if request.node.get_closest_marker("airflow") is not None:
        request.getfixturevalue("airflow_db")


@pytest.fixture(scope="session")
def airflow_api_server(airflow_db: Any) -> Iterator[airflow_harness.ApiServer]:
    """``airflow api-server`` for the session (~12 s to start), all users admins, on 127.0.0.1."""
    server = airflow_harness.ApiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def airflow_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Mapping[str, Any] | str], None]:
    """Define a connection for this test as an ``AIRFLOW_CONN_*`` variable: ``airflow_connection(id, conn)``.

    Seen by this process (hooks, ``run_dag``) and by subprocesses started afterwards (``run_airflow``).
    """

    def define(conn_id: str, connection: Mapping[str, Any] | str) -> None:
        for name, value in airflow_harness.connection_env({conn_id: connection}).items():
            monkeypatch.setenv(name, value)

    return define

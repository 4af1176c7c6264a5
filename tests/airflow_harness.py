"""A real Airflow 3.3 for the test suite, as cheap as it can be on a 2-core machine.

Importing this module (``tests/conftest.py`` does, first thing) points Airflow at a throwaway
``AIRFLOW_HOME`` for the whole session. It must happen before anything imports ``airflow``: Airflow
reads its configuration once, at import time.

What costs what here (measured on the 2-core test machine):

- ``import airflow``: ~3 s, paid once by the pytest process and once by every CLI subprocess.
- Migrating the metadata DB: ~2 s in-process, ~7 s as ``airflow db migrate``. Done in-process,
  once per session, by the first test that needs it (:func:`ensure_db`).
- ``dag.test()`` in-process: the first call in a process builds the in-process Execution API
  (~9 s); later calls cost ~0.5 s plus the DAG's own work. ``airflow dags test DAG_ID`` in a
  subprocess pays import + that warm-up on every run (~17 s for a two-task DAG), so
  :func:`run_dag` runs ``dag.test()`` in the pytest process. Both run the same code
  (the CLI command is a thin wrapper around ``dag.test()``).
- ``airflow api-server``: ~12 s to answer its health check; started once, on demand.

Facts this harness relies on (Airflow 3.3.2):

- ``dag.test()`` needs the migrated DB and the DAG in a file of the DAGs folder: it serializes the
  DAGs folder bundle to the DB and refuses a DAG that is not there ("Cannot create DagRun ... because
  the dag is not serialized"). :func:`run_dag` copies the file into an otherwise empty DAGs folder,
  because every ``dag.test()`` re-parses the whole folder.
- Without an executor, ``dag.test()`` runs every task in the calling process and runs a deferred
  task's trigger inline (first event only; the trigger is rebuilt from its serialized kwargs by
  class path, as a triggerer would), so no triggerer is needed. The defer timeout is not enforced
  (the scheduler does that). The trigger rows stay in the DB: :meth:`DagRunResult.triggers`.
  Task output goes to the console and is NOT passed through the secrets masker.
- With ``use_executor=True`` (LocalExecutor), every task runs in a process of its own, its log is a
  file under ``AIRFLOW_HOME/logs`` passed through the masker, and the task talks to the Execution
  API of a running API server (the ``airflow_api_server`` fixture); a deferred task then waits for
  a real triggerer (:class:`Triggerer`), and forever without one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# First: AIRFLOW_HOME below, and everything else of the session, goes into the session's own TMPDIR.
import session_temp  # noqa: F401

if TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator, Mapping

if "airflow" in sys.modules:  # pragma: no cover - a wiring error, not a test outcome
    raise RuntimeError(
        "airflow was imported before tests/airflow_harness.py set AIRFLOW_HOME; the suite would run "
        "against the user's Airflow. Import nothing from airflow at module level of a pytest plugin."
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="bankapi-airflow-"))
DAGS_FOLDER = AIRFLOW_HOME / "dags"
LOGS_FOLDER = AIRFLOW_HOME / "logs"
API_PORT = free_port()
API_URL = f"http://127.0.0.1:{API_PORT}"

#: The configuration every Airflow of the session sees: this process and every subprocess.
AIRFLOW_SETTINGS: dict[str, str] = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(LOGS_FOLDER),
    "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
    # The connection "Test" button and `airflow connections test` are off by default.
    "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    # Fixed for the session, so the CLI, the API server and this process agree: connections
    # encrypted by one are readable by the others, and task JWTs validate. 64 bytes: PyJWT warns
    # about shorter HMAC keys for HS512.
    "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(AIRFLOW_HOME / "passwords.json"),
    # Where LocalExecutor tasks (dag.test(use_executor=True)) find the Execution API.
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{API_URL}/execution/",
    "AIRFLOW__API__BASE_URL": API_URL,
    # The machine has 2 cores: a handful of LocalExecutor workers is plenty.
    "AIRFLOW__CORE__PARALLELISM": "4",
    # The provider's host token store follows XDG_CACHE_HOME: the suite's tokens stay in the
    # session's home, never in the user's ~/.cache, and every session starts cold.
    "XDG_CACHE_HOME": str(AIRFLOW_HOME / "cache"),
}

DAGS_FOLDER.mkdir()
os.environ.update(AIRFLOW_SETTINGS)

_db_ready = False


def connection_env(connections: Mapping[str, Mapping[str, Any] | str] | None) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` variables for connections given as dicts (JSON form) or JSON/URI strings.

    :param connections: connection id -> ``{"conn_type": "bankapi", "host": ..., "extra": {...}}``
        or an already serialized JSON or URI string.
    """
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": value if isinstance(value, str) else json.dumps(value)
        for conn_id, value in (connections or {}).items()
    }


def airflow_environment(
    env: Mapping[str, str] | None = None,
    connections: Mapping[str, Mapping[str, Any] | str] | None = None,
) -> dict[str, str]:
    """The environment of an Airflow subprocess: this process's, the session's settings, then overrides.

    :param env: extra variables, applied last (e.g. ``{"AIRFLOW__CORE__TEST_CONNECTION": "Disabled"}``).
    :param connections: connections to expose as ``AIRFLOW_CONN_*`` variables.
    """
    return {**os.environ, **AIRFLOW_SETTINGS, **connection_env(connections), **(env or {})}


def run_airflow(
    *args: str,
    env: Mapping[str, str] | None = None,
    connections: Mapping[str, Mapping[str, Any] | str] | None = None,
    timeout: float = 240,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` CLI of this virtualenv in a subprocess with the session's configuration.

    :param args: the command line after ``airflow``, e.g. ``("providers", "list", "--output", "json")``.
    :param env: extra environment variables, applied last.
    :param connections: connections to expose as ``AIRFLOW_CONN_*`` variables.
    :param timeout: seconds before the subprocess is killed and the test fails.
    :param check: raise ``AssertionError`` (with the output) when the command exits non-zero.
    """
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=airflow_environment(env, connections),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"airflow {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


def ensure_db() -> None:
    """Migrate the session's metadata DB, once (in-process: the pytest process imports Airflow anyway)."""
    global _db_ready
    if _db_ready:
        return
    from airflow.utils import db

    db.upgradedb()
    _db_ready = True


@contextlib.contextmanager
def patched_environ(variables: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore the previous values."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def install_dag(dag_file: str | os.PathLike[str]) -> Path:
    """Copy a DAG file into the session's DAGs folder, alone: every ``dag.test()`` parses the whole folder.

    :param dag_file: a Python file defining one or more DAGs.
    :return: the path of the copy.
    """
    from bankapi_sandbox.dag_test import install_dag_file

    return install_dag_file(dag_file, DAGS_FOLDER)


@dataclass(frozen=True)
class DagRunResult:
    """What a DAG run left in the metadata DB.

    :param dag_id: the DAG run.
    :param run_id: its run id.
    :param state: ``"success"`` or ``"failed"``.
    :param task_states: ``(task_id, map_index) -> state`` of every task instance (``map_index`` -1
        when not mapped).
    :param first_trigger_id: the first trigger row this run may have created (see :meth:`triggers`).
    """

    dag_id: str
    run_id: str
    state: str
    task_states: Mapping[tuple[str, int], str | None]
    first_trigger_id: int = 1

    def triggers(self) -> list[tuple[str, str]]:
        """Every trigger the run deferred to: ``(classpath, kwargs as the stored JSON text)``.

        Airflow 3.3.2 stores the kwargs of worker deferrals as plain JSON; decrypted here if not.
        """
        from airflow.models.crypto import get_fernet
        from airflow.models.trigger import Trigger
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.execute(
                select(Trigger.classpath, Trigger.encrypted_kwargs)
                .where(Trigger.id >= self.first_trigger_id)
                .order_by(Trigger.id)
            ).all()
        return [
            (classpath, stored if stored.startswith("{") else get_fernet().decrypt(stored.encode()).decode())
            for classpath, stored in rows
        ]

    def xcoms(self) -> dict[tuple[str, int, str], Any]:
        """Every XCom of the run: ``(task_id, map_index, key) -> value`` (deserialized)."""
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.scalars(
                select(XComModel).where(XComModel.dag_id == self.dag_id, XComModel.run_id == self.run_id)
            ).all()
            return {(row.task_id, row.map_index, row.key): XComModel.deserialize_value(row) for row in rows}

    def xcom(self, task_id: str, *, map_index: int = -1, key: str = "return_value") -> Any:
        """One XCom value of the run (``KeyError`` if the task pushed none)."""
        return self.xcoms()[(task_id, map_index, key)]

    def task_log(self, task_id: str, *, map_index: int = -1, try_number: int = 1) -> str:
        """The task's log file: only written by runs with ``use_executor=True`` (it is masked)."""
        folder = LOGS_FOLDER / f"dag_id={self.dag_id}" / f"run_id={self.run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        return (folder / f"attempt={try_number}.log").read_text()


def run_dag(
    dag_file: str | os.PathLike[str],
    dag_id: str | None = None,
    *,
    connections: Mapping[str, Mapping[str, Any] | str] | None = None,
    env: Mapping[str, str] | None = None,
    conf: Mapping[str, Any] | None = None,
    use_executor: bool = False,
    logical_date: datetime.datetime | None = None,
) -> DagRunResult:
    """Run one DAG with ``dag.test()`` in this process, against the session's metadata DB.

    Task output (and so any secret a task prints or logs) goes to the console, unmasked: read it
    with pytest's ``capfd``.

    :param dag_file: the DAG's file; copied into the DAGs folder (see :func:`install_dag`).
    :param dag_id: which DAG of the file; optional when the file defines one.
    :param connections: connections for the run, as ``AIRFLOW_CONN_*`` variables (removed after).
    :param env: more environment variables for the run (removed after).
    :param conf: the DAG run's ``conf``.
    :param use_executor: run each task in a process of its own through the LocalExecutor; needs the
        ``airflow_api_server`` fixture, and a running :class:`Triggerer` if the DAG defers.
    :param logical_date: the run's logical date (default now); its data interval is the one the DAG's
        schedule gives a manual run at that time. Running a date again clears and reruns it.
    """
    ensure_db()
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    from bankapi_sandbox.dag_test import run_dag_file

    target = install_dag(dag_file)
    with create_session() as session:
        first_trigger_id = (session.scalar(select(func.max(Trigger.id))) or 0) + 1
    with patched_environ({**connection_env(connections), **(env or {})}):
        ran = run_dag_file(target, dag_id, conf=conf, logical_date=logical_date, use_executor=use_executor)
    return DagRunResult(
        dag_id=ran.dag_id,
        run_id=ran.run_id,
        state=ran.state,
        task_states=ran.task_states,
        first_trigger_id=first_trigger_id,
    )


class AirflowService:
    """A long-running ``airflow`` command (a server, the triggerer) in a subprocess of its own process
    group, with the session's configuration; its output goes to ``AIRFLOW_HOME/<name>.log``.

    :param name: names the log file.
    :param args: the command line after ``airflow``.
    :param env: extra environment variables, applied last.
    :param prefix: a command that runs ``airflow`` (e.g. ``unshare`` giving it a mount namespace of its
        own, as another machine's file system would be).
    """

    def __init__(
        self,
        name: str,
        args: tuple[str, ...],
        env: Mapping[str, str] | None = None,
        *,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.args = args
        self.env = dict(env or {})
        self.prefix = prefix
        self.log_path = AIRFLOW_HOME / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    def ready(self) -> bool:
        """True once the service does its job (polled during :meth:`start`)."""
        return True

    def start(self, timeout: float = 180) -> None:
        """Start the command and wait until :meth:`ready`."""
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "airflow", *self.args],
                env=airflow_environment(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches its children too
            )
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"airflow {self.name} exited {self.process.returncode}:\n{self.log_tail()}"
                )
            if self.ready():
                self.startup_seconds = time.monotonic() - started
                return
            time.sleep(0.25)
        self.stop()
        raise AssertionError(f"airflow {self.name} was not ready within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the command (SIGTERM to its process group; SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""

    def __enter__(self) -> AirflowService:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Triggerer(AirflowService):
    """``airflow triggerer``: runs deferred tasks' triggers in its own trigger-runner subprocess, as in a
    deployment, and writes each trigger's log next to its task's (``attempt=N.log.trigger.<job>.log``).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        # Its log server gets a free port, so that two sessions on one machine do not collide.
        port = {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        super().__init__("triggerer", ("triggerer",), {**port, **(env or {})})

    def start(self, timeout: float = 180) -> None:
        _forget_finished_triggers()
        super().start(timeout)

    def ready(self) -> bool:
        return "Starting the triggerer" in self.log_tail(100_000)


def _forget_finished_triggers() -> None:
    """Delete the trigger rows no deferred task waits for and no asset watcher runs.

    ``dag.test()`` runs triggers inline and leaves their rows behind (see :meth:`DagRunResult.triggers`);
    a real triggerer would pick those up and run them again, against whatever bank the environment
    now points at. An asset watcher's trigger is no leftover: its DAG is still deployed.
    """
    from airflow.models.asset import AssetWatcherModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import delete, select

    waiting = select(TaskInstance.trigger_id).where(
        TaskInstance.state == TaskInstanceState.DEFERRED, TaskInstance.trigger_id.is_not(None)
    )
    watching = select(AssetWatcherModel.trigger_id)
    # No RETURNING (the ORM's default way to synchronise the session): SQLite 3.40 answered this DELETE
    # with "database disk image is malformed" once a deployment had left asset watchers' rows behind.
    leftovers = delete(Trigger).where(Trigger.id.not_in(waiting), Trigger.id.not_in(watching))
    with create_session() as session:
        session.execute(leftovers.execution_options(synchronize_session=False))


class ApiServer(AirflowService):
    """``airflow api-server`` on 127.0.0.1, with the session's configuration.

    The simple auth manager runs with every user an admin, so requests need no token.
    """

    def __init__(self, port: int = API_PORT) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        args = ("api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
        super().__init__(f"api-server-{port}", args)

    def ready(self) -> bool:
        import requests

        with contextlib.suppress(requests.ConnectionError):
            return requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).status_code == 200
        return False

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request to the server; returns the ``requests.Response``. ``path`` starts with ``/``."""
        import requests

        return requests.request(method, f"{self.base_url}{path}", timeout=30, **kwargs)

    def get_json(self, path: str) -> Any:
        """GET ``path`` and return the decoded JSON body (``AssertionError`` unless 200)."""
        response = self.request("GET", path)
        if response.status_code != 200:
            raise AssertionError(f"GET {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json()


def remove_home() -> None:
    """Delete the session's AIRFLOW_HOME (kept when ``BANKAPI_KEEP_AIRFLOW_HOME`` is set, for debugging)."""
    if os.environ.get("BANKAPI_KEEP_AIRFLOW_HOME"):
        sys.stderr.write(f"\nAIRFLOW_HOME kept: {AIRFLOW_HOME}\n")
        return
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)

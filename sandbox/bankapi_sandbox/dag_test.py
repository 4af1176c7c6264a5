"""Run a user's DAG file with ``dag.test()`` against a sandbox bank, in one step.

``dag.test()`` in Airflow 3.3 needs a migrated metadata DB and the DAG in a file of the DAGs folder (a DAG
built in the test itself is "not serialized"). :func:`isolate` gives a test session an Airflow of its own
(a temporary AIRFLOW_HOME with SQLite, its own DAGs folder and token cache), which has to happen before
Airflow is imported; :class:`DagTest` then migrates the DB once, copies the DAG file in, points the
connection at the sandbox and runs the DAG. Airflow is imported here only when a DAG runs: the sandbox
itself does not need it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datetime
    from collections.abc import Mapping

    from bankapi_sandbox.runner import Sandbox

#: The temporary AIRFLOW_HOME's name starts with this (removed when the session ends).
HOME_PREFIX = "bankapi-airflow-home-"


class AirflowAlreadyImported(RuntimeError):
    """Airflow read its configuration before the isolated AIRFLOW_HOME could be set."""


def isolate() -> Path:
    """Give this process (and the processes it starts) an Airflow of its own; returns its AIRFLOW_HOME.

    :raises AirflowAlreadyImported: Airflow is imported already, so it would keep its own configuration
        (and its own metadata DB).
    """
    if "airflow" in sys.modules:
        raise AirflowAlreadyImported(
            "bankapi_airflow_home = isolated needs to set AIRFLOW_HOME before Airflow is imported, and "
            "Airflow is imported already (a conftest.py that imports airflow or your DAGs at its top?). "
            "Import them inside tests or fixtures instead."
        )
    home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX))
    (home / "dags").mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            # The provider's host token cache: the session's own, never the user's ~/.cache.
            "XDG_CACHE_HOME": str(home / "cache"),
        }
    )
    return home


@dataclass
class DagRunResult:
    """What a run did: its state and each task instance's, by ``(task_id, map_index)``."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[tuple[str, int], str | None] = field(default_factory=dict)


class DagTest:
    """``dag_test(dag_file, dag_id=None, conf=None)``: the DAG run with ``dag.test()`` against ``sandbox``.

    :param sandbox: the bank the connection points at.
    :param home: the isolated AIRFLOW_HOME (from :func:`isolate`).
    :param conn_id: the connection the DAG uses.
    """

    _migrated: set[Path] = set()

    def __init__(self, sandbox: Sandbox, home: Path, conn_id: str = "bankapi_default") -> None:
        self.sandbox = sandbox
        self.home = home
        self.conn_id = conn_id

    def __call__(
        self,
        dag_file: str | os.PathLike[str],
        dag_id: str | None = None,
        *,
        conf: Mapping[str, Any] | None = None,
        logical_date: datetime.datetime | None = None,
    ) -> DagRunResult:
        """Run one DAG of ``dag_file`` once; task logs go to the console (pytest's ``capfd`` reads them)."""
        self._migrate()
        target = install_dag_file(dag_file, self.home / "dags")
        variable = f"AIRFLOW_CONN_{self.conn_id.upper()}"
        saved = os.environ.get(variable)
        os.environ[variable] = json.dumps(self.sandbox.connection)
        try:
            return run_dag_file(target, dag_id, conf=conf, logical_date=logical_date)
        finally:
            if saved is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = saved

    def _migrate(self) -> None:
        if self.home not in DagTest._migrated:
            from airflow.utils import db

            db.upgradedb()
            DagTest._migrated.add(self.home)


def install_dag_file(source: str | os.PathLike[str], folder: Path) -> Path:
    """Copy a DAG file into a DAGs folder, alone in it (``dag.test()`` parses the whole folder)."""
    source = Path(source).resolve()
    target = folder / source.name
    for stale in folder.iterdir():
        if stale != target:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    if source != target:
        shutil.copyfile(source, target)
    return target


def run_dag_file(
    target: Path,
    dag_id: str | None = None,
    *,
    conf: Mapping[str, Any] | None = None,
    logical_date: datetime.datetime | None = None,
    use_executor: bool = False,
) -> DagRunResult:
    """One DAG of a file in the DAGs folder, run once with ``dag.test()``; its state and its tasks'.

    :param use_executor: each task in a process of its own through the executor (needs an API server).
    """
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(str(target))
    if bag.import_errors:
        raise AssertionError(f"{target.name} does not parse: {bag.import_errors}")
    if dag_id is None:
        if len(bag.dag_ids) != 1:
            raise AssertionError(f"{target.name} defines {bag.dag_ids}: pass dag_id")
        dag_id = bag.dag_ids[0]
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise AssertionError(f"{target.name} defines no DAG {dag_id!r} (it defines {bag.dag_ids})")
    run_conf = dict(conf) if conf is not None else None
    # Not passed at all when not given: dag.test()'s own default is a logical date of now, while an
    # explicit None makes a run without one (and without a data interval).
    dated = {} if logical_date is None else {"logical_date": logical_date}
    dag_run = dag.test(run_conf=run_conf, use_executor=use_executor, **dated)
    of_the_run = (TaskInstance.dag_id == dag_id) & (TaskInstance.run_id == dag_run.run_id)
    with create_session() as session:
        instances = session.scalars(select(TaskInstance).where(of_the_run)).all()
        states = {(ti.task_id, ti.map_index): ti.state and str(ti.state) for ti in instances}
    return DagRunResult(dag_id, dag_run.run_id, str(dag_run.state), states)

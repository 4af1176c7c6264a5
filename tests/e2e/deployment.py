"""A real Airflow deployment on loopback for the end-to-end tests (``make e2e``).

:class:`Deployment` starts what a production deployment runs, each as a process of its own, against
the session's metadata DB and AIRFLOW_HOME (``tests/airflow_harness.py``): ``airflow api-server``,
``scheduler``, ``dag-processor`` and ``triggerer``; with ``celery_workers=N``, a Redis broker
(:class:`RedisServer`) and N ``airflow celery worker`` processes instead of the LocalExecutor. Each
"machine" (the scheduler's, each Celery worker's) has its own :class:`Host`: its token cache
(``XDG_CACHE_HOME``) and its task log folder.

Tests talk to it as users do, through the REST API (the simple auth manager makes every user an
admin, so requests need no token) and the CLI (:meth:`Deployment.airflow`). Every process is stopped
by its PID (its process group) when the block ends, also on failure; the logs of all of them are then
copied to ``.e2e-logs/<name>/`` in the repository, which outlives the session's AIRFLOW_HOME.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_harness import (
    AIRFLOW_HOME,
    LOGS_FOLDER,
    AirflowService,
    ApiServer,
    DagRunResult,
    Triggerer,
    ensure_db,
    free_port,
    run_airflow,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pytest

    from bankapi_sandbox.runner import Sandbox

REPOSITORY = Path(__file__).resolve().parents[2]
KEPT_LOGS = REPOSITORY / ".e2e-logs"
FINISHED = {"success", "failed"}


@dataclass(frozen=True)
class Host:
    """One machine of the deployment: where its task processes cache tokens and write task logs."""

    name: str
    cache_dir: Path
    log_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {"XDG_CACHE_HOME": str(self.cache_dir), "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.log_dir)}

    def forget_tokens(self) -> None:
        """A new machine in its place: an empty token cache."""
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def token_files(self) -> list[Path]:
        return sorted(self.cache_dir.rglob("*.json"))

    def task_logs(self, dag_id: str, run_id: str) -> list[Path]:
        return sorted((self.log_dir / f"dag_id={dag_id}" / f"run_id={run_id}").rglob("attempt=*.log"))


class RedisServer:
    """Debian's ``redis-server`` on a free loopback port, in memory only, as the Celery broker."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.log_path = AIRFLOW_HOME / "redis.log"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed (apt-get install redis-server; .ci/run does)")
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", str(self.directory)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while "Ready to accept connections" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"redis-server did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


class CeleryWorker(AirflowService):
    """``airflow celery worker`` with a host of its own (token cache, task logs, Celery hostname)."""

    def __init__(
        self, host: Host, env: Mapping[str, str], concurrency: int, *, prefix: tuple[str, ...] = ()
    ) -> None:
        args = ("celery", "worker", "--celery-hostname", f"{host.name}@%h", "--concurrency", str(concurrency),
                "--skip-serve-logs", "--pid", str(AIRFLOW_HOME / f"{host.name}.pid"))
        super().__init__(host.name, args, {**env, **host.env}, prefix=prefix)

    def ready(self) -> bool:
        return " ready." in self.log_tail(100_000)


class Deployment:
    """Airflow's components as separate processes on loopback, for one module of tests.

    :param name: names the kept logs folder (``.e2e-logs/<name>``).
    :param dags_folder: the DAGs folder every component reads.
    :param celery_workers: 0 for the LocalExecutor; else that many Celery workers, each a :class:`Host`.
    :param concurrency: task slots per Celery worker.
    :param env: more configuration for every component, e.g. ``{"BANKAPI_FUNDS_POKE_INTERVAL": "0.5"}``.
    :param worker_files: files (name -> content) that only the machines running tasks have: they appear in
        :attr:`worker_files` for the scheduler's processes (the LocalExecutor runs tasks and connection
        tests as its children) and each Celery worker's, while that folder stays empty for every other
        component, the API server's included, as on separate machines.
    """

    def __init__(
        self,
        name: str,
        dags_folder: Path,
        *,
        celery_workers: int = 0,
        concurrency: int = 2,
        env: Mapping[str, str] | None = None,
        worker_files: Mapping[str, bytes] | None = None,
    ) -> None:
        self.name = name
        self.kept_logs = KEPT_LOGS / name
        self._scratch = Path(tempfile.mkdtemp(prefix="bankapi-e2e-"))
        self.worker_files = self._scratch / "worker-files"
        self.worker_files.mkdir()
        on_workers = self._worker_mount(worker_files) if worker_files else ()
        self.api = ApiServer(free_port())
        self.scheduler_host = self._host("scheduler")
        self.env: dict[str, str] = {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api.base_url}/execution/",
            "AIRFLOW__API__BASE_URL": self.api.base_url,
            # Only the runs the tests trigger: no scheduled run competes for the bank's counters.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if celery_workers else "LocalExecutor",
            **self.scheduler_host.env,
            **(env or {}),
        }
        self.redis: RedisServer | None = None
        if celery_workers:
            self.redis = RedisServer(self._scratch)
            self.env["AIRFLOW__CELERY__BROKER_URL"] = f"{self.redis.url}/0"
            self.env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"{self.redis.url}/1"
        self.worker_hosts = [self._host(f"worker-{index}") for index in range(1, celery_workers + 1)]
        self.api.env.update(self.env)
        # No log server (it listens on every interface, on a port shared by all sessions of the machine):
        # the API server reads the scheduler machine's logs from disk, and the tests read the workers'.
        triggerer = Triggerer(env=self.env)
        triggerer.args = ("triggerer", "--skip-serve-logs")
        self.services: list[AirflowService] = [
            self.api,
            AirflowService("scheduler", ("scheduler", "--skip-serve-logs"), self.env, prefix=on_workers),
            AirflowService("dag-processor", ("dag-processor",), self.env),
            triggerer,
            *(CeleryWorker(host, self.env, concurrency, prefix=on_workers) for host in self.worker_hosts),
        ]
        self.startup_seconds: float | None = None

    def _worker_mount(self, files: Mapping[str, bytes]) -> tuple[str, ...]:
        """A command prefix that runs a component in a mount namespace of its own, where the folder
        holding ``files`` is mounted on :attr:`worker_files` (root only, as in CI)."""
        source = self._scratch / "worker-machine"
        source.mkdir(mode=0o700)
        for name, content in files.items():
            (source / name).write_bytes(content)
        mount = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return ("unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh",
                str(source), str(self.worker_files))

    def _host(self, name: str) -> Host:
        # The scheduler's machine logs where the API server reads task logs (and DagRunResult.task_log).
        log_dir = LOGS_FOLDER if name == "scheduler" else AIRFLOW_HOME / "hosts" / name / "logs"
        return Host(name, self._scratch / name / "cache", log_dir)

    @property
    def hosts(self) -> list[Host]:
        return [self.scheduler_host, *self.worker_hosts]

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, timeout: float = 300) -> None:
        """Start every component and wait until the API reports each of them healthy."""
        started = time.monotonic()
        ensure_db()
        shutil.rmtree(self.kept_logs, ignore_errors=True)
        try:
            if self.redis is not None:
                self.redis.start()
            for service in self.services:
                service.start(timeout)
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop every process by its PID (workers first), keep the logs, delete the token caches."""
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()
        if self.redis is not None:
            self.redis.stop()
        self._keep_logs()
        shutil.rmtree(self._scratch, ignore_errors=True)
        _leave_the_db_clean()

    def __enter__(self) -> Deployment:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = self.api.get_json("/api/v2/monitor/health")
            if all(health.get(part, {}).get("status") == "healthy" for part in components):
                return
            time.sleep(1)
        raise AssertionError(f"not healthy within {timeout} s: {health}\n{self.where_logs_are()}")

    def _keep_logs(self) -> None:
        self.kept_logs.mkdir(parents=True, exist_ok=True)
        own = [service.log_path for service in self.services] + ([self.redis.log_path] if self.redis else [])
        for log in own:
            if log.exists():
                shutil.copy2(log, self.kept_logs / log.name)
        for host in self.hosts:
            if host.log_dir.exists():
                shutil.copytree(host.log_dir, self.kept_logs / f"{host.name}-logs", dirs_exist_ok=True)

    def where_logs_are(self) -> str:
        return f"Logs of every component: {self.kept_logs} (written when the deployment stops)"

    def explain(self, results: Iterable[DagRunResult], lines: int = 40) -> str:
        """For each run that did not succeed: its task states and the last ``lines`` lines of every task
        log it wrote (masked by Airflow), so that a failing assertion says why without the kept logs."""
        parts = []
        for result in results:
            if result.state == "success":
                continue
            parts.append(f"== {result.dag_id} {result.run_id}: {result.state} {result.task_states}")
            # The scheduler's own word on the run: a task it failed itself (a state mismatch) has no
            # error in the task's log.
            for service in self.services:
                if service.name.startswith("scheduler") and service.log_path.exists():
                    text = service.log_path.read_text(errors="replace").splitlines()
                    said = [line for line in text if result.run_id in line and "[error" in line]
                    parts.extend(f"-- {service.name}: {line[:1500]}" for line in said[-5:])
            for host in self.hosts:
                for path in host.task_logs(result.dag_id, result.run_id):
                    tail = path.read_text(errors="replace").splitlines()[-lines:]
                    parts.append(f"-- {host.name}: {path.name} ({path.parent.name})\n" + "\n".join(tail))
        return "\n".join(parts + [self.where_logs_are()])

    # -- the REST API, as a user's UI or script uses it --------------------------------------------

    def call(self, method: str, path: str, expected: int = 200, **kwargs: Any) -> Any:
        """A REST call that must answer ``expected``; returns the decoded JSON body (None if empty)."""
        response = self.api.request(method, path, **kwargs)
        if response.status_code != expected:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def create_connection(self, conn_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/connections``, replacing any of that id; ``fields`` as the form saves them."""
        # SQLite serialises every writer of the deployment: a DELETE or the POST may time out on its lock
        # while the scheduler and the tasks write (a 500, the write rolled back), and is asked again rather
        # than leave the old connection in place or none at all.
        deadline = time.monotonic() + 60
        while True:
            if self.api.request("DELETE", f"/api/v2/connections/{conn_id}").status_code < 500:
                response = self.api.request(
                    "POST", "/api/v2/connections", json={"connection_id": conn_id, **fields}
                )
                if response.status_code < 500:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"replacing connection {conn_id} kept failing\n{self.where_logs_are()}")
            time.sleep(1)
        if response.status_code != 201:
            raise AssertionError(
                f"POST /api/v2/connections -> {response.status_code}: {response.text[:2000]}"
            )
        return dict(response.json())

    def test_on_worker(self, conn_id: str, fields: Mapping[str, Any], timeout: float = 120) -> dict[str, Any]:
        """``POST /api/v2/connections/enqueue-test``, then poll it as a script would until it ends: the
        connection test runs on a worker (dispatched by the scheduler), not on the API server."""
        queued = self.call("POST", "/api/v2/connections/enqueue-test", 202,
                           json={"connection_id": conn_id, **fields})
        headers = {"Airflow-Connection-Test-Token": queued["token"]}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.call("GET", "/api/v2/connections/enqueue-test", headers=headers)
            if status["state"] in ("success", "failed"):
                return dict(status)
            time.sleep(0.5)
        raise AssertionError(f"connection test {conn_id} still {status['state']} after {timeout} s\n"
                             f"{self.where_logs_are()}")

    def set_variable(self, key: str, value: str) -> None:
        self.api.request("DELETE", f"/api/v2/variables/{key}")
        self.call("POST", "/api/v2/variables", 201, json={"key": key, "value": value})

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 300) -> None:
        """Wait until the dag-processor has parsed and stored every DAG of ``dag_ids``."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = self.call("GET", "/api/v2/dags", params={"limit": 100})
            if wanted <= {dag["dag_id"] for dag in listed["dags"]}:
                return
            time.sleep(1)
        errors = self.call("GET", "/api/v2/importErrors")
        raise AssertionError(f"DAGs {sorted(wanted)} not parsed within {timeout} s; import errors: {errors}")

    def trigger(
        self, dag_id: str, conf: Mapping[str, Any] | None = None, *, logical_date: str | None = None
    ) -> str:
        """Unpause the DAG and trigger a run, as the UI's Trigger button does; returns the run id.

        :param logical_date: ISO 8601; without one (the button's default) the run has no data interval.
        """
        self.call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        body = {"logical_date": logical_date, "conf": dict(conf or {})}
        return str(self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def xcom(self, result: DagRunResult, task_id: str, *, map_index: int = -1) -> Any:
        """A task's return value, as the API gives it (an ``AssertionError`` if it pushed none)."""
        path = f"{run_path(result.dag_id, result.run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.call("GET", path, params={"map_index": map_index, "deserialize": True})["value"]

    def job_ids(self, job_type: str) -> set[int]:
        """The ids of the jobs of one type (``TriggererJob``, ``SchedulerJob``...) the API knows."""
        jobs = self.call("GET", "/api/v2/jobs", params={"job_type": job_type, "limit": 100})["jobs"]
        return {int(job["id"]) for job in jobs}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> DagRunResult:
        """Wait until the run finishes; its task states and state come from the REST API."""
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.call("GET", run_path(dag_id, run_id))
            if run["state"] in FINISHED:
                break
            time.sleep(1)
        instances = self.call("GET", f"{run_path(dag_id, run_id)}/taskInstances", params={"limit": 1000})[
            "task_instances"
        ]
        states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in instances}
        if run.get("state") not in FINISHED:
            raise AssertionError(f"{dag_id} {run_id} still {run.get('state')} after {timeout} s: {states}\n"
                                 f"{self.where_logs_are()}")
        return DagRunResult(dag_id=dag_id, run_id=run_id, state=run["state"], task_states=states)

    # -- the CLI and the files -----------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """The ``airflow`` CLI on the scheduler's machine, configured like the deployment."""
        return run_airflow(*args, env=self.env, timeout=timeout)

    def files_holding(self, secrets: Iterable[str]) -> dict[str, list[str]]:
        """Every file under AIRFLOW_HOME holding one of ``secrets``: relative path -> the secrets' first
        characters (never the whole secret, so that a failing assertion does not print it)."""
        needles = [(secret.encode(), secret[:4] + "...") for secret in secrets]
        found: dict[str, list[str]] = {}
        for path in sorted(AIRFLOW_HOME.rglob("*")):
            if path.is_file() and not path.is_symlink():
                content = path.read_bytes()
                hits = [label for needle, label in needles if needle in content]
                if hits:
                    found[str(path.relative_to(AIRFLOW_HOME))] = hits
        return found


def run_path(dag_id: str, run_id: str) -> str:
    """The API path of a DAG run (run ids hold ``:`` and ``+``)."""
    return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def form_connection(bank: Sandbox, **extra: Any) -> dict[str, Any]:
    """The sandbox's connection as the UI form saves it: PEM text pasted into the fields, the form's
    defaults filled in, the extra as a JSON string; ``extra`` overrides fields (``cache_scope="cluster"``)."""
    fields = {
        "client_cert": bank.client_cert.read_text(),
        "client_private_key": bank.client_key.read_text(),
        "ca_cert": bank.ca_cert.read_text(),
        "auth_endpoint": "/auth/token-v2",
        "cache_scope": "host",
        "refresh_margin": 300,
        **extra,
    }
    return {
        "conn_type": "bankapi",
        "host": bank.base_url,
        "login": bank.client_id,
        "password": bank.connection["password"],
        "extra": json.dumps(fields),
    }


def secrets_of(bank: Sandbox, hosts: Iterable[Host]) -> list[str]:
    """What must appear in no file: the client secret, the PFX password, the private key's lines and
    every token the hosts cached."""
    key_lines = [line for line in bank.client_key.read_text().splitlines() if line and "-----" not in line]
    tokens = [json.loads(path.read_text())["access_token"] for host in hosts for path in host.token_files()]
    if not tokens:
        raise AssertionError("no host cached a token: a scan for them would prove nothing")
    values = [bank.connection["password"], bank.connection_pfx["extra"]["client_pfx_password"], *key_lines,
              *tokens]
    if any(len(value) < 16 for value in values):
        raise AssertionError("a secret shorter than 16 characters could match by coincidence")
    return values


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A line on the terminal, past output capture (figures worth reading on a green run too)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\ne2e: {line}")


def report_deployment(request: pytest.FixtureRequest, deployment: Deployment, started: float) -> None:
    """What a deployment cost (wall time, from start to stop) and where its logs are."""
    report(request, f"{deployment.name}: {time.monotonic() - started:.0f} s in all, components ready in "
                    f"{deployment.startup_seconds or 0:.0f} s; logs kept in {deployment.kept_logs}")


def _leave_the_db_clean() -> None:
    """What a deployment leaves in the session's metadata DB, undone for the next module's deployment.

    - Its DAGs paused: the next deployment's scheduler (with its job schedule on) would start their
      scheduled runs at once, all competing for SQLite with the runs that deployment's tests make.
    - Its runs (their task instances go with them), triggers, asset events and queued asset-triggered runs
      deleted: the next deployment would run a queued run, start an earlier trigger in its triggerer, or
      count an earlier watcher's run as its own. Its dag-processor registers its DAGs' watchers again.

    Through fresh connections: this process's pooled SQLite connections may still see the DB as it was
    when they last ran, and a clean-up through them left the previous module's queued run in place.
    """
    from airflow import settings
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import delete, update

    settings.engine.dispose()
    with create_session() as session:
        session.execute(update(DagModel).values(is_paused=True).execution_options(synchronize_session=False))
        for model in (AssetDagRunQueue, AssetEvent, DagRun, Trigger):
            session.execute(delete(model).execution_options(synchronize_session=False))

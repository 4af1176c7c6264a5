"""The README's ``bankapi_dag_test`` recipe, as a user's project runs it: pytest in a process of its own,
in a folder holding only the README's configuration, its test file and an example DAG, with none of this
suite's Airflow settings in the environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs pytest, and Airflow, in processes of their own

ROOT = Path(__file__).resolve().parents[2]


def readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Your DAGs under `dag.test()`", 1)[1].split("\n### ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def user_project(directory: Path, *, configured: bool = True, conftest: str = "") -> Path:
    (directory / "dags").mkdir(parents=True)
    example = ROOT / "dags_examples" / "bankapi_hourly_balances.py"
    shutil.copyfile(example, directory / "dags" / example.name)
    (toml,) = readme_blocks("toml")
    (directory / "pyproject.toml").write_text(toml if configured else "[tool.pytest.ini_options]\n")
    (test,) = readme_blocks("python")
    (directory / "test_my_dags.py").write_text(test)
    if conftest:
        (directory / "conftest.py").write_text(conftest)
    return directory


def run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    # A user's shell: none of this suite's Airflow configuration (its AIRFLOW_HOME, DB, DAGs folder).
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "XDG_CACHE"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_readme_recipe_runs_an_example_dag_against_the_sandbox_in_one_step(tmp_path):
    ran = run_pytest(user_project(tmp_path / "project"))
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "1 passed" in ran.stdout
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("bankapi-airflow-home-*"))  # removed


def test_without_the_setting_the_fixture_says_what_to_set(tmp_path):
    ran = run_pytest(user_project(tmp_path / "project", configured=False))
    assert ran.returncode != 0
    assert "bankapi_airflow_home = isolated" in ran.stdout


def test_a_conftest_that_imports_airflow_first_is_told_so(tmp_path):
    ran = run_pytest(user_project(tmp_path / "project", conftest="import airflow.sdk  # noqa: F401\n"))
    assert ran.returncode != 0
    assert "Airflow is imported already" in ran.stdout + ran.stderr

"""The README's install sections, as written, on a fresh copy of the repository and a fresh virtualenv.

No package index carries the provider: a user builds the wheel with the README's command, installs it
with the pins of this Python (Airflow 3.3.2), sees the provider in ``airflow providers list``, and copies
the example DAGs and finds the docs that the wheel carries inside the package; then installs the sandbox
bank from the clone and runs the README's test file with its fixture. pip may use this machine's caches,
so this costs a few minutes once they are warm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGE = "airflow_provider_bankapi"
DOCS = ("README.md", "CHANGELOG.md", "bank-contract.md", "connection-form.png")
README = (REPOSITORY / "README.md").read_text()
# Not in a clone: what this checkout built or ran.
NOT_CLONED = shutil.ignore_patterns(
    ".git", ".venv", ".e2e-logs", ".demo", "dist", "build", "__pycache__", ".*_cache", ".hypothesis"
)


def install_section() -> str:
    return README[README.index("## Install\n") : README.index("## Connection setup\n")]


def sandbox_section() -> str:
    start = README.index("## Sandbox: a local Banking API with real mutual TLS\n")
    return README[start : README.index("\n## ", start + 1)]


def bash_blocks(section: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def python_blocks(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="bankapi-e2e-install-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def user_shell(script: str, *, cwd: Path, venv: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``bash -e`` with the fresh virtualenv first on PATH and none of this session's Airflow settings."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("AIRFLOW", "XDG_CACHE_HOME", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", AIRFLOW_HOME=str(home))
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=780, check=False)
    assert result.returncode == 0, f"{script}\n--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n" \
                                   f"{result.stderr[-3000:]}"
    return result


def test_the_wheel_installs_as_the_readme_says_into_a_fresh_virtualenv(workdir):
    clone_block, wheel_block, dags_block = bash_blocks(install_section())
    assert "pip install .\n" in clone_block
    clone, venv, home = workdir / "airflow-provider-bankapi", workdir / "venv", workdir / "airflow-home"
    shutil.copytree(REPOSITORY, clone, ignore=NOT_CLONED)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)

    user_shell(wheel_block, cwd=clone, venv=venv, home=home)

    (wheel,) = (clone / "dist").glob("airflow_provider_bankapi-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        entry_points_text = archive.read(entry_points).decode()
    assert "airflow_provider_bankapi/hooks/bankapi.py" in names
    assert not [name for name in names if not name.startswith("airflow_provider_bankapi")]  # no tests
    assert not [name for name in names if "sandbox" in name]  # the test bank is a distribution of its own
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    examples = sorted(path.name for path in (REPOSITORY / "dags_examples").glob("bankapi_*.py"))
    assert sorted(n.split("/")[-1] for n in names if "/example_dags/" in n) == examples
    assert set(DOCS) <= {name.split("/")[-1] for name in names if name.startswith(f"{PACKAGE}/docs/")}
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not [name for name in names if name.endswith((".key", ".pem", ".crt", ".pfx", ".p12"))]
    assert "provider_info = airflow_provider_bankapi.get_provider_info:get_provider_info" in entry_points_text
    assert "pytest11" not in entry_points_text

    listed = user_shell("airflow providers list --output json", cwd=workdir, venv=venv, home=home)
    providers = json.loads(listed.stdout.strip().splitlines()[-1])
    (provider,) = [entry for entry in providers if entry["package_name"] == "airflow-provider-bankapi"]
    assert f"-{provider['version']}-" in wheel.name
    versions = user_shell("python -c 'import airflow; print(airflow.__version__)'", cwd=workdir, venv=venv,
                          home=home)
    assert versions.stdout.strip() == "3.3.2"  # the pins of this Python, as the README installs them

    # The README's copy, from the installed package: the clone's dags_examples/ is out of reach.
    shutil.rmtree(clone / "dags_examples")
    shown = user_shell(dags_block, cwd=clone, venv=venv, home=home)
    copied = sorted(path.name for path in (home / "dags").glob("*.py"))
    assert copied == examples
    assert set(DOCS) <= set(shown.stdout.split())

    # For the user's own tests: the sandbox distribution, its fixture in the README's test file, its CLI.
    (sandbox_block,) = bash_blocks(sandbox_section())[:1]
    user_shell(sandbox_block, cwd=clone, venv=venv, home=home)
    user_tests = workdir / "user-tests"
    user_tests.mkdir()
    (user_tests / "test_with_the_sandbox.py").write_text(python_blocks(sandbox_section())[0])
    ran = user_shell("python -m pytest -q -p no:cacheprovider", cwd=user_tests, venv=venv, home=home)
    assert "2 passed" in ran.stdout
    user_shell("python -m bankapi_sandbox init bank", cwd=workdir, venv=venv, home=home)
    assert json.loads((workdir / "bank" / "connection.json").read_text())["conn_type"] == "bankapi"

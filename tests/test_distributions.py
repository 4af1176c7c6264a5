"""The two distributions of the repository: the provider (what runs in production) and the sandbox bank
(what users test with). The provider's wheel carries no sandbox file and never imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
PROVIDER = REPOSITORY / "airflow_provider_bankapi"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_provider_never_imports_the_sandbox():
    importers = sorted(
        str(path.relative_to(REPOSITORY))
        for path in PROVIDER.rglob("*.py")
        if any(name.split(".")[0] == "bankapi_sandbox" for name in imported_modules(path))
    )
    assert importers == []
    assert not (PROVIDER / "sandbox").exists()


def build_wheel(project: Path, into: Path) -> zipfile.ZipFile:
    # With the build backend of the test install (no download): what `pip wheel` makes for a user.
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", into]
    subprocess.run([*command, project], check=True, timeout=300)
    (wheel,) = into.glob("*.whl")
    return zipfile.ZipFile(wheel)


def entry_points(archive: zipfile.ZipFile) -> str:
    (name,) = [name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt")]
    return archive.read(name).decode()


def packages(archive: zipfile.ZipFile) -> set[str]:
    return {name.split("/")[0] for name in archive.namelist() if ".dist-info/" not in name}


@pytest.mark.slow  # builds a wheel in a subprocess
def test_the_provider_wheel_holds_no_sandbox(tmp_path):
    with build_wheel(REPOSITORY, tmp_path) as archive:
        names, points = archive.namelist(), entry_points(archive)
        assert packages(archive) == {"airflow_provider_bankapi"}
    assert "airflow_provider_bankapi/hooks/bankapi.py" in names
    assert [name for name in names if "sandbox" in name] == []
    # No pytest plugin loaded into the test sessions of everyone who installs the provider.
    assert "pytest11" not in points
    assert "provider_info = airflow_provider_bankapi.get_provider_info:get_provider_info" in points


@pytest.mark.slow  # builds a wheel in a subprocess
def test_the_sandbox_wheel_carries_the_fixture_and_the_command_line(tmp_path):
    with build_wheel(REPOSITORY / "sandbox", tmp_path) as archive:
        names, points = archive.namelist(), entry_points(archive)
        assert packages(archive) == {"bankapi_sandbox"}
    assert {"bankapi_sandbox/pytest_plugin.py", "bankapi_sandbox/__main__.py"} <= set(names)
    assert "[pytest11]\nbankapi_sandbox = bankapi_sandbox.pytest_plugin" in points
    assert not [name for name in names if name.endswith((".key", ".pem", ".crt", ".pfx", ".p12"))]

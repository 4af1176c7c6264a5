"""The client layer and the error tree never import Airflow: they must work (and be tested) without it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_bankapi

PACKAGE = Path(airflow_provider_bankapi.__file__).parent
PURE_FILES = sorted((PACKAGE / "client").glob("**/*.py")) + [
    PACKAGE / name for name in ("errors.py", "documents.py", "pagination.py")
]


def airflow_imports(source: str) -> list[str]:
    """Every ``import airflow...`` / ``from airflow... import`` in the source, wherever it sits."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "airflow"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "airflow":
                found.append(node.module)
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("import airflow", ["airflow"], id="import"),
        pytest.param("from airflow.sdk import BaseHook", ["airflow.sdk"], id="from-import"),
        pytest.param("def f():\n    import airflow.models as m\n", ["airflow.models"], id="nested"),
        pytest.param(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from airflow import DAG\n",
            ["airflow"],
            id="type-checking",
        ),
        pytest.param("import airflow_provider_bankapi\nfrom .errors import X\n", [], id="look-alikes"),
    ],
)
def test_the_scanner_finds_airflow_imports(source: str, expected: list[str]) -> None:
    assert airflow_imports(source) == expected


def test_there_is_something_to_scan() -> None:
    assert PACKAGE / "client" / "identity" / "identity.py" in PURE_FILES
    assert PACKAGE / "errors.py" in PURE_FILES


@pytest.mark.parametrize(
    "path", [pytest.param(path, id=path.relative_to(PACKAGE).as_posix()) for path in PURE_FILES]
)
def test_no_airflow_import_in_the_source(path: Path) -> None:
    assert airflow_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.slow  # a fresh interpreter
def test_importing_the_client_layer_loads_no_airflow() -> None:
    # Catches indirect imports too (a helper elsewhere in the package that pulls airflow in).
    modules = ["airflow_provider_bankapi.errors"] + [
        "airflow_provider_bankapi." + path.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".")
        for path in PURE_FILES
        if path.parent.name == "client"
    ]
    program = (
        "import importlib, json, sys\n"
        "missing = []\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name.removesuffix('.__init__'))\n"
        "    except ModuleNotFoundError as exc:\n"
        "        missing.append(exc.name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(json.dumps({'airflow': loaded, 'missing': missing}))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["airflow"] == []
    # A sibling module not written yet is tolerated; a missing third-party module is not.
    assert [name for name in report["missing"] if not name.startswith("airflow_provider_bankapi.")] == []

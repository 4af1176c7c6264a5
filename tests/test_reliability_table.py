"""RELIABILITY.md agrees with the suite: every test its table names exists, and its totals count its rows."""

from __future__ import annotations

import ast
import re
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "RELIABILITY.md"
KINDS = ("fault", "event", "bad input", "security")
_ROW = re.compile(r"^\| (?P<kind>[a-z ]+) \| (?P<case>.+?) \| (?P<does>.+) \| `(?P<test>tests/[^`]+)` \|$")
_TOTAL = re.compile(r"^\| (?P<kind>[a-z ]+|\*\*all\*\*) \| (?P<count>\*\*\d+\*\*|\d+) \|$")


def rows() -> list[dict[str, str]]:
    return [match.groupdict() for line in TABLE.read_text().splitlines() if (match := _ROW.match(line))]


def totals() -> dict[str, int]:
    found = {}
    for line in TABLE.read_text().split("## Totals", 1)[1].splitlines():
        if match := _TOTAL.match(line):
            found[match["kind"].strip("*")] = int(match["count"].strip("*"))
    return found


@cache
def defined_tests(path: Path) -> frozenset[str]:
    """``name`` and ``Class::name`` of every test function the file defines."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            methods = (item for item in node.body if isinstance(item, ast.FunctionDef))
            names.update(f"{node.name}::{method.name}" for method in methods)
    return frozenset(name for name in names if name.split("::")[-1].startswith("test_"))


def missing(node_id: str) -> str | None:
    """Why a node id names no test of the suite, or None when it does (parameters are not checked)."""
    path, _, name = node_id.partition("::")
    file = ROOT / path
    if not file.is_file():
        return f"no file {path}"
    if name.split("[", 1)[0] not in defined_tests(file):
        return f"no test {name} in {path}"
    return None


def test_the_table_has_rows_of_every_kind():
    assert {row["kind"] for row in rows()} == set(KINDS)
    lines = [line for line in TABLE.read_text().splitlines() if line.startswith("| ") and "`tests/" in line]
    assert len(lines) == len(rows()), "a row of the table does not parse: kind | case | does | `test`"


def test_every_test_the_table_names_exists():
    problems = [problem for row in rows() if (problem := missing(row["test"]))]
    assert not problems, "\n".join(problems)


def test_the_totals_count_the_rows():
    counted = Counter(row["kind"] for row in rows())
    assert totals() == {**{kind: counted[kind] for kind in KINDS}, "all": sum(counted.values())}


def test_no_case_is_listed_twice():
    cases = Counter((row["kind"], row["case"]) for row in rows())
    assert [case for case, count in cases.items() if count > 1] == []


@pytest.mark.parametrize(
    ("node_id", "problem"),
    [
        pytest.param("tests/nowhere/test_x.py::test_y", "no file", id="no-file"),
        pytest.param("tests/test_reliability_table.py::test_nothing_of_the_sort", "no test", id="no-test"),
        pytest.param("tests/test_reliability_table.py::test_the_totals_count_the_rows", None, id="exists"),
        pytest.param("tests/test_reliability_table.py::test_no_case_is_listed_twice[x]", None, id="param"),
    ],
)
def test_the_checker_tells_a_missing_test(node_id, problem):
    found = missing(node_id)
    assert (found is None) if problem is None else (problem in found)

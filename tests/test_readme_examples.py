"""Every ```python block of the user docs, checked so that the user's guide cannot drift from the code.

Each block compiles and every name it imports exists. A block that builds DAG objects (operators,
sensors, triggers, assets, retry policies) is executed in the fast lane, inside a DAG of its own unless
it makes one, so the constructors themselves judge its arguments: a renamed parameter, a wrong import or
a value an operator refuses fails here. A block carries on from its section: it runs with the imports of
the earlier blocks under the same ``##`` heading, as a reader has them.

Blocks that need a bank are listed in ``AGAINST_THE_SANDBOX`` and run for real against the sandbox by
the slow tests at the end; a block that needs ``dag.test()`` is listed in ``RUN_ELSEWHERE`` with the test
that runs it as the README tells a user to. Every other block is executed in the fast lane, so a new
block cannot go unchecked, and a test function a block defines must be listed to be called at all.

The ``export AIRFLOW_CONN_...='{...}'`` lines of the connection setup are connections a user copies: each
is defined as it is written, its values replaced by the sandbox's for the same keys, and calls the bank.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import linecache
import re
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from bankapi_sandbox.runner import running

ROOT = Path(__file__).resolve().parents[1]
# The user docs with Python examples: the README, and any docs/*.md that gains one.
DOCUMENTS = ("README.md", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md")))

# Blocks that call a bank: run for real against the sandbox by the named test of this file.
AGAINST_THE_SANDBOX = {
    "readme-the-hook-1": "test_the_hooks_task_body_against_the_sandbox",
    "readme-what-an-error-shows-1": "test_the_redactor_masks_the_connections_secret",
    "readme-in-your-tests-1": "test_the_sandbox_fixtures_test_functions_pass",
    "readme-anywhere-in-python-1": "test_running_starts_and_stops_a_sandbox",
}
# Blocks that need Airflow's dag.test(), kept out of this file: compiled and their imports checked here,
# run as the README tells a user to (a project of its own, pytest in its own process) by the named test.
RUN_ELSEWHERE = {
    "readme-your-dags-under-dag-1": (
        "tests/sandbox/test_dag_test_fixture.py::"
        "test_the_readme_recipe_runs_an_example_dag_against_the_sandbox_in_one_step"
    ),
}


@dataclass(frozen=True)
class Block:
    """One ```python block, with the heading it sits under and the ``##`` section that heading is in."""

    id: str
    document: str
    heading: str
    section: str
    line: int
    source: str

    @property
    def filename(self) -> str:
        return f"{self.document}, line {self.line}"


def _slug(heading: str) -> str:
    # At most four words of the heading, before a colon: "The hook: `BankingApiHook`" -> the-hook.
    return "-".join(re.findall(r"[a-z0-9]+", heading.split(":", 1)[0].lower())[:4])


def _blocks(document: str) -> list[Block]:
    lines = (ROOT / document).read_text().splitlines()
    blocks: list[Block] = []
    counts: dict[str, int] = {}
    heading = section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            end = lines.index("```", index + 1)
            if line == "```python":
                slug = f"{Path(document).stem.lower()}-{_slug(heading)}"
                counts[slug] = counts.get(slug, 0) + 1
                source = "\n".join(lines[index + 1 : end]) + "\n"
                blocks.append(Block(f"{slug}-{counts[slug]}", document, heading, section, index + 2, source))
            index = end + 1
            continue
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            section = heading if line.startswith("## ") else section
        index += 1
    return blocks


BLOCKS = [block for document in DOCUMENTS for block in _blocks(document)]
BY_ID = {block.id: block for block in BLOCKS}
LISTED = AGAINST_THE_SANDBOX.keys() | RUN_ELSEWHERE.keys()
EXECUTED_HERE = [block for block in BLOCKS if block.id not in LISTED]


def _code(block: Block) -> Any:
    # Tracebacks show the README's own line.
    linecache.cache[block.filename] = (len(block.source), None, block.source.splitlines(True), block.filename)
    return compile(block.source, block.filename, "exec")


def _decorated(function: ast.FunctionDef, name: str) -> bool:
    return any(getattr(getattr(d, "func", d), "id", None) == name for d in function.decorator_list)


def _namespace(block: Block) -> dict[str, Any]:
    """What a reader of the section has at this block: the imports of the section's earlier blocks."""
    section = [
        other for other in BLOCKS if (other.document, other.section) == (block.document, block.section)
    ]
    namespace: dict[str, Any] = {"__name__": block.id.replace("-", "_")}
    for earlier in section[: section.index(block)]:
        body = ast.parse(earlier.source).body
        imports = ast.Module([node for node in body if isinstance(node, ast.Import | ast.ImportFrom)], [])
        exec(compile(imports, earlier.filename, "exec"), namespace)
    return namespace


def _execute(block: Block) -> dict[str, Any]:
    """Run the block in a DAG of its own (unless it makes one), then build the DAGs its ``@dag``s declare."""
    tree = ast.parse(block.source)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    makes_a_dag = "DAG" in calls or any(_decorated(function, "dag") for function in functions)
    namespace = _namespace(block)
    with nullcontext() if makes_a_dag else DAG(dag_id=block.id, schedule=None):
        exec(_code(block), namespace)
    for function in functions:
        if _decorated(function, "dag"):
            namespace[function.name]()
    return namespace


# -- every block -------------------------------------------------------------------------------------------


def test_the_readme_has_its_python_examples():
    assert len([block for block in BLOCKS if block.document == "README.md"]) >= 15
    assert len(BY_ID) == len(BLOCKS)  # one id per block


@pytest.mark.parametrize("block", [pytest.param(block, id=block.id) for block in BLOCKS])
def test_compiles_and_every_imported_name_exists(block):
    _code(block)
    for node in ast.walk(ast.parse(block.source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{block.filename}: a relative import"
            module = importlib.import_module(str(node.module))
            for alias in node.names:
                assert hasattr(module, alias.name), f"{block.filename}: {node.module} has no {alias.name}"


def test_every_listed_block_is_in_the_docs_and_its_test_exists():
    # A heading renamed or a block removed: the lists say so rather than keep a stale entry.
    assert LISTED <= BY_ID.keys()
    for test in AGAINST_THE_SANDBOX.values():
        assert callable(globals().get(test)), test
    for block_id, test in RUN_ELSEWHERE.items():
        path, name = test.split("::")
        source = (ROOT / path).read_text()
        assert f"def {name}(" in source, test
        heading = BY_ID[block_id].heading.split(":")[0]
        assert heading in source, f"{path} no longer reads the block under {heading}"


# -- blocks that build DAG objects, executed -----------------------------------------------------------------


@pytest.mark.parametrize("block", [pytest.param(block, id=block.id) for block in EXECUTED_HERE])
def test_builds_its_dag_objects(block):
    tests = [
        node.name
        for node in ast.parse(block.source).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]
    assert not tests, f"{block.filename} defines {tests}: run them against the sandbox (AGAINST_THE_SANDBOX)"
    _execute(block)


# -- blocks that need a bank, against the sandbox -----------------------------------------------------------


@pytest.fixture
def token_cache(monkeypatch, tmp_path):
    """This test's own host token store, so no token outlives the test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def bankapi_default(bankapi_sandbox, monkeypatch, token_cache):
    """The sandbox as the connection ``bankapi_default``, the one the README's blocks name."""
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", bankapi_sandbox.connection_json)
    return bankapi_sandbox


def test_the_hooks_task_body_against_the_sandbox(bankapi_default):
    # The @task's body, as the task runs it: three balances in one batch, those above the limit returned.
    balances_above = _execute(BY_ID["readme-the-hook-1"])["balances_above"]
    assert balances_above.function("0.00") == ["123", "456", "789"]
    assert balances_above.function("1000000000.00") == []


def test_the_redactor_masks_the_connections_secret(bankapi_default, capsys):
    _execute(BY_ID["readme-what-an-error-shows-1"])
    assert capsys.readouterr().out == "echo: ***\n"


@pytest.mark.slow  # starts a sandbox bank of its own
def test_running_starts_and_stops_a_sandbox():
    block = BY_ID["readme-anywhere-in-python-1"]
    exec(_code(block), _namespace(block))


@pytest.mark.slow  # starts a sandbox bank per test function
def test_the_sandbox_fixtures_test_functions_pass(monkeypatch, token_cache):
    # What the bankapi_sandbox fixture gives each function: a sandbox started with its marker's options.
    namespace = _execute(BY_ID["readme-in-your-tests-1"])
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        marks = [mark.kwargs for mark in getattr(test, "pytestmark", []) if mark.name == "bankapi_sandbox"]
        with running(**(marks[0] if marks else {})) as sandbox, monkeypatch.context() as patch:
            fixtures = {"bankapi_sandbox": sandbox, "monkeypatch": patch}
            test(**{name: fixtures[name] for name in inspect.signature(test).parameters})


# -- the AIRFLOW_CONN_* exports of the connection setup ------------------------------------------------------

EXPORTS = [
    (name, value)
    for document in DOCUMENTS
    for name, value in re.findall(
        r"export (AIRFLOW_CONN_\w+)='(.*?)'", (ROOT / document).read_text(), re.DOTALL
    )
]


def test_the_readme_shows_a_pem_and_a_pkcs12_connection_export():
    kinds = {frozenset(json.loads(value)["extra"]) for _, value in EXPORTS}
    assert {"client_cert", "client_private_key"} <= set().union(*kinds)
    assert {"client_pfx_secret", "client_pfx_password"} <= set().union(*kinds)


@pytest.mark.parametrize(
    ("name", "value"), [pytest.param(*export, id=f"export-{i}") for i, export in enumerate(EXPORTS)]
)
def test_each_connection_export_works_once_its_values_are_the_sandboxs(
    bankapi_sandbox, monkeypatch, token_cache, name, value
):
    # The README's keys as a user copies them, each value replaced by the sandbox's for the same key: a key
    # renamed or missing in the README fails here, as it would fail the user's connection.
    connection = json.loads(value)
    sandbox = (
        bankapi_sandbox.connection_pfx
        if "client_pfx_secret" in connection["extra"]
        else bankapi_sandbox.connection
    )
    assert connection["conn_type"] == sandbox["conn_type"] == "bankapi"
    assert set(connection) <= set(sandbox), set(connection) - set(sandbox)
    assert set(connection["extra"]) == set(sandbox["extra"])
    real = {**{key: sandbox[key] for key in connection}, "extra": sandbox["extra"]}
    monkeypatch.setenv(name, json.dumps(real))

    hook = BankingApiHook(bankapi_conn_id=name.removeprefix("AIRFLOW_CONN_").lower())

    assert hook.get_balance("123")["account_id"] == "123"

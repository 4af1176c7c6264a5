"""Call path: the provider's own code that one cold ``hook.get_balance`` runs, counted.

One call should read as a straight line: down the layers once (Connection -> hook -> client -> transport)
and back up once. This traces one call with ``sys.setprofile`` and counts what it ran of the provider.

Run: ``python -m benchmarks call_path``.
"""

from __future__ import annotations

import inspect
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks._measure import machine

TITLE = "Call path of one balance"
ABOUT = """
What one cold `hook.get_balance("123")` runs of the provider's own code: a new process, an empty host
token cache (so the token is fetched), the sandbox bank in a process of its own. `sys.setprofile` sees
every Python function the call enters; only the provider's are counted (requests', urllib3's and
Airflow's are not, nor the bodies of modules and classes the call imports lazily). A **re-entry** is a
call into a provider module that is already on the stack below a different provider module: control
went down into another module and came back up into the first through a callback (a loop in the
layers), which one straight call does not do.

Command: `.venv/bin/python -m benchmarks call_path`
"""

PACKAGE = Path(__import__("airflow_provider_bankapi").__file__).resolve().parent


def module_of(filename: str) -> str | None:
    """``client.api`` for a file of the provider, None for any other file."""
    path = Path(filename)
    try:
        relative = path.resolve().relative_to(PACKAGE)
    except ValueError:
        return None
    return ".".join(relative.with_suffix("").parts)


def trace(call: object) -> dict[str, object]:
    """Run ``call()`` under a profiler; the provider's modules, functions, calls and re-entries."""
    functions: Counter[tuple[str, str]] = Counter()
    stack: list[str] = []
    reentries: Counter[str] = Counter()
    cache: dict[str, str | None] = {}

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        if event not in ("call", "return"):
            return
        filename = frame.f_code.co_filename
        module = cache.get(filename, "?")
        if module == "?":
            module = cache[filename] = module_of(filename)
        if module is None or not frame.f_code.co_flags & inspect.CO_OPTIMIZED:
            return  # not the provider's, or the body of a module or class run by a lazy import, not the call
        if event == "call":
            caller = stack[-1] if stack else None
            if caller is not None and caller != module and module in stack:
                reentries[f"{module} (from {caller})"] += 1
            functions[(module, frame.f_code.co_qualname)] += 1
            stack.append(module)
        elif stack:
            stack.pop()

    sys.setprofile(profile)
    try:
        call()  # type: ignore[operator]
    finally:
        sys.setprofile(None)
    modules = Counter(module for module, _ in functions.elements())
    return {
        "modules": modules,
        "functions": len(functions),
        "calls": sum(functions.values()),
        "reentries": reentries,
    }


def main() -> None:
    from benchmarks._sandbox import serving, use_connection

    with serving() as sandbox, tempfile.TemporaryDirectory(prefix="bankapi-bench-") as cache:
        os.environ["XDG_CACHE_HOME"] = cache  # an empty host token cache: the call fetches the token
        use_connection(sandbox)
        from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

        hook = BankingApiHook()
        figures = trace(lambda: hook.get_balance("123"))
        assert sandbox.counters()["tokens_issued"] == 1, "the call did not fetch its token"
    modules: Counter[str] = figures["modules"]  # type: ignore[assignment]
    reentries: Counter[str] = figures["reentries"]  # type: ignore[assignment]
    print(f"{machine()}.\n")
    print("| provider modules | functions | calls | re-entries |")
    print("|---:|---:|---:|---:|")
    print(f"| {len(modules)} | {figures['functions']} | {figures['calls']} | {sum(reentries.values())} |\n")
    print("| module | calls into its functions |")
    print("|---|---:|")
    for module, count in modules.most_common():
        print(f"| `{module}` | {count} |")
    if reentries:
        print("\n| re-entered module (from) | times |")
        print("|---|---:|")
        for where, count in reentries.most_common():
            print(f"| `{where}` | {count} |")

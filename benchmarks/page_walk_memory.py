"""Memory of a page walk: peak RSS of walking 10 and 100 pages of the Open Finance transactions resource,
through ``BankingApiOperator``'s writer and through ``hook.records``, each walk in a process of its own.

Run: ``python -m benchmarks page_walk_memory`` (``PAGE_WALK_PAGES``, default 10,100).
"""

from __future__ import annotations

import datetime
import os
import tempfile
import time
from typing import Any

from bankapi_sandbox import data
from benchmarks._measure import in_processes, machine, peak_since_reset_mb, reset_peak_rss, rss_mb
from benchmarks._sandbox import serving, use_connection

TITLE = "Memory of a page walk"
ABOUT = """
Peak resident memory of one task walking 10 and 100 pages (100 transactions each, 1,000 and 10,000 in
all) of the sandbox's `/open-banking/accounts/{id}/transactions`: `{"data": [...], "links": {"next"},
"meta"}` pages followed by `pagination="links"`, the pages asked for by a `BookingWindow` (333 and
3,333 São Paulo dates, three transactions each). Three ways: `BankingApiOperator` writing JSON Lines to a
`file://` URL; the same with `dedupe_key="transactionId"` (the keys of the window held and remembered);
and `BankingApiHook.records` read to the end. The goal of a streaming walk: peak RSS(100 pages) /
RSS(10 pages) <= 1.2, and a walk's own growth that does not follow the pages.

Command: `.venv/bin/python -m benchmarks page_walk_memory` (`PAGE_WALK_PAGES`)

Each walk runs in a process forked from a parent that has imported Airflow and the operator (a task
process's starting point). It first walks one page the same way, which pays what a task's first call
costs (the modules imported on first use, the connection lookup, the TLS connection, a token); then the
measured walk. The figures: RSS at the start, the peak of the one-page walk, RSS after it, and the peak of
the measured walk (the high-water mark `VmHWM`, reset before each walk through `/proc/self/clear_refs`:
a forked child otherwise inherits its parent's). One run per size: the peak is a count of pages, not a
timing. Airflow's asset state (where `dedupe_key` remembers the keys) needs a task runner: here a dict
in the process stands for it, holding the same JSON value.

Reading it: one page is in memory at a time (decoded, its records stamped and written, then dropped),
so the writer and `hook.records` stay flat with the pages. With `dedupe_key` what grows is the written
keys, by design: every key of the window is held to leave out repeats, and the run's keys are written to
the asset state as one JSON value (tens of bytes a key); a daily run's window holds a few days of keys, not
ten years of them as the 100-page walk here does.
"""

PAGES = tuple(int(n) for n in os.environ.get("PAGE_WALK_PAGES", "10,100").split(","))
PAGE_SIZE = 100
ACCOUNT = "123"
ENDPOINT = f"/open-banking/accounts/{ACCOUNT}/transactions"
WAYS = ("writer", "writer with dedupe_key", "hook.records")


def _days(pages: int) -> int:
    """The dates of a window that fills ``pages`` pages (the last one partly)."""
    return (pages * PAGE_SIZE + 1) // data.BOOKED_PER_DAY


def _context(days: int) -> dict[str, Any]:
    from airflow.sdk import Asset

    class AssetState:  # Airflow's asset state needs a task runner; the same JSON value kept in this process
        def __init__(self) -> None:
            self.values: dict[str, Any] = {}

        def __getitem__(self, asset: Asset) -> AssetState:
            return self

        def get(self, key: str, default: Any = None) -> Any:
            return self.values.get(key, default)

        def set(self, key: str, value: Any) -> None:
            self.values[key] = value

    # São Paulo days ending at midnight of 2026-12-06: the window's last date is 2026-12-05.
    end = datetime.datetime(2026, 12, 6, 3, tzinfo=datetime.timezone.utc)
    start = end - datetime.timedelta(days=days)
    return {"data_interval_start": start, "data_interval_end": end, "asset_state_store": AssetState()}


def _walk_once(way: str, pages: int, url: str) -> dict[str, Any]:
    from airflow_provider_bankapi.operators.bankapi import BankingApiOperator, BookingWindow

    window = BookingWindow(lookback=datetime.timedelta(0))
    context = _context(_days(pages))
    if way == "hook.records":
        from airflow_provider_bankapi.hooks.bankapi import BankingApiHook

        dates = window.dates(context["data_interval_start"], context["data_interval_end"])
        params = {"page-size": PAGE_SIZE, **window.params(dates)}
        count = 0
        for _ in BankingApiHook().records(ENDPOINT, params=params, pagination="links", records_path="data"):
            count += 1
        return {"records": count, "pages": pages}
    operator = BankingApiOperator(
        task_id="walk",
        endpoint=ENDPOINT,
        query_params={"page-size": PAGE_SIZE},
        pagination="links",
        records_path="data",
        window=window,
        dedupe_key="transactionId" if way == "writer with dedupe_key" else None,
        output_path=url,
        asset_alias="",
    )
    return operator.execute(context)  # type: ignore[arg-type,no-any-return]


def walk(arguments: tuple[str, int, str]) -> dict[str, Any]:
    """One task: a one-page walk (what a task's first call costs: imports, the connection, TLS, a
    token), then a walk of ``pages`` pages the same way; memory after each, wall time of the second.
    """
    way, pages, url = arguments
    reset_peak_rss()  # the parent's own peak (its imports) is not the task's
    before = rss_mb()
    _walk_once(way, 1, url)
    first_use = peak_since_reset_mb()
    reset_peak_rss()
    settled = rss_mb()
    started = time.perf_counter()
    result = _walk_once(way, pages, url)
    wall = time.perf_counter() - started
    return {
        "before": before,
        "first_use": first_use,
        "settled": settled,
        "peak": peak_since_reset_mb(),
        "wall": wall,
        **result,
    }


def main() -> None:
    import airflow_provider_bankapi.client.api  # noqa: F401 - a task process has these once it runs
    import airflow_provider_bankapi.hooks.bankapi  # noqa: F401
    import airflow_provider_bankapi.operators.bankapi  # noqa: F401

    print(f"{machine()}; {PAGE_SIZE} transactions a page.\n")
    rows = []
    with serving() as sandbox, tempfile.TemporaryDirectory(prefix="bankapi-bench-out-") as out:
        use_connection(sandbox, cache_scope="process")
        for way in WAYS:
            for pages in PAGES:
                url = f"file://{out}/walk-{pages}.jsonl"
                result = in_processes(walk, [(way, pages, url)])[0]
                expected = _days(pages) * data.BOOKED_PER_DAY - 1
                if result["records"] != expected or result["pages"] != pages:
                    raise RuntimeError(f"{way}: {result['records']} records in {result['pages']} pages")
                rows.append((way, pages, result))
    print(
        "| walk | pages | records | RSS at start MiB | peak of a first 1-page walk MiB | RSS then MiB | "
        "peak of the walk MiB | walk's growth MiB | KiB per page | wall s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for way, pages, r in rows:
        growth = r["peak"] - r["settled"]
        print(
            f"| {way} | {pages} | {r['records']:,} | {r['before']:.0f} | {r['first_use']:.0f} | "
            f"{r['settled']:.0f} | {r['peak']:.0f} | {growth:.1f} | {growth * 1024 / pages:.0f} | "
            f"{r['wall']:.1f} |",
            flush=True,
        )
    print()
    for way in WAYS:
        sizes = [(pages, r) for w, pages, r in rows if w == way]
        (small, first), (large, last) = sizes[0], sizes[-1]
        print(
            f"- {way}: RSS({large} pages) / RSS({small} pages) = **{last['peak'] / first['peak']:.2f}** "
            "(goal <= 1.2 for a streaming walk)"
        )

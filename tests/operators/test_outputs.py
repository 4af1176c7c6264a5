"""Writing JSON Lines and CSV through ObjectStoragePath (local files here; s3:// etc. use the same code)."""

from __future__ import annotations

import csv
import datetime
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest
from airflow.sdk.io import store
from fsspec.implementations.memory import MemoryFileSystem

from airflow_provider_bankapi.documents import loads
from airflow_provider_bankapi.errors import ConfigurationError
from airflow_provider_bankapi.operators.outputs import (
    STALE_TEMPORARY_SECONDS,
    PageRecords,
    asset_uri,
    output_format,
    output_location,
    write_csv,
    write_jsonl,
)


@pytest.mark.parametrize(
    ("name", "requested", "expected"),
    [
        pytest.param("b.jsonl", None, "jsonl", id="jsonl-suffix"),
        pytest.param("b.CSV", None, "csv", id="csv-suffix-any-case"),
        pytest.param("b.ndjson", None, "jsonl", id="ndjson-suffix"),
        pytest.param("b.txt", None, "jsonl", id="unknown-suffix-is-json-lines"),
        pytest.param("b.txt", "csv", "csv", id="asked-wins-over-suffix"),
        pytest.param("b.csv", "JSON", "jsonl", id="json-means-json-lines"),
    ],
)
def test_the_output_format(tmp_path, name, requested, expected):
    assert output_format(output_location((tmp_path / name).as_uri()), requested) == expected


def test_an_unknown_output_format_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="output_format") as caught:
        output_format(output_location(tmp_path.as_uri()), "parquet")
    assert caught.value.field == "output_format"


@pytest.mark.parametrize("url", [pytest.param("", id="empty"), pytest.param("data/x.jsonl", id="relative")])
def test_an_output_path_must_be_a_url_or_absolute(url):
    with pytest.raises(ConfigurationError, match="output_path"):
        output_location(url)


def test_an_absolute_path_is_a_local_file_and_its_asset_a_file_uri(tmp_path):
    path = output_location(str(tmp_path / "x.jsonl"))

    assert asset_uri(path) == (tmp_path / "x.jsonl").as_uri()


def test_json_lines_round_trip_with_text_money_and_unicode(tmp_path):
    path = output_location((tmp_path / "deep" / "er" / "x.jsonl").as_uri())
    records = [
        {"account_id": "1", "available": "10.10", "description": "Pagamento PIX — São Paulo"},
        [1, None],
    ]

    assert write_jsonl(path, records) == 2
    lines = (tmp_path / "deep" / "er" / "x.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records


def test_a_failure_while_records_are_produced_leaves_no_half_written_file(tmp_path):
    def records():
        yield {"n": 1}
        raise RuntimeError("the bank went away")

    path = output_location((tmp_path / "x.jsonl").as_uri())
    with pytest.raises(RuntimeError, match="went away"):
        write_jsonl(path, records())
    assert not (tmp_path / "x.jsonl").exists()


def test_csv_has_every_column_account_id_first_nested_objects_as_columns_and_lists_as_json(tmp_path):
    rows = [
        {"available": "1.00", "account_id": "1"},
        {
            "account_id": "2",
            "amount": {"amount": Decimal("1000.0400"), "currency": "BRL"},
            "limits": {"pix": {"day": "100.00"}},
            "tags": ["a", Decimal("1.10")],
            "note": None,
        },
    ]
    path = output_location((tmp_path / "b.csv").as_uri())

    assert write_csv(path, rows, first_column="account_id") == 2
    with (tmp_path / "b.csv").open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == [
        "account_id", "available", "amount.amount", "amount.currency", "limits.pix.day", "tags", "note"
    ]  # fmt: skip
    assert read[0] == dict.fromkeys(read[0], "") | {"account_id": "1", "available": "1.00"}
    assert read[1]["amount.amount"] == "1000.0400"
    assert read[1]["amount.currency"] == "BRL"
    assert read[1]["limits.pix.day"] == "100.00"
    assert read[1]["tags"] == '["a",1.10]'


def test_json_lines_keep_the_banks_digits(tmp_path):
    path = output_location((tmp_path / "m.jsonl").as_uri())
    record = loads('{"a":1000.0400,"b":12345678901234567.89,"c":1e309,"d":0.0000001,"e":10}')

    write_jsonl(path, [record])

    written = '{"a":1000.0400,"b":12345678901234567.89,"c":1E+309,"d":0.0000001,"e":10}\n'
    assert (tmp_path / "m.jsonl").read_text() == written


def test_pages_are_counted_as_their_records_stream_by_each_stamped_with_fetched_at():
    pages = [{"items": [{"n": 1}, 2]}, {"data": [{"n": 3}]}, {"items": []}]

    streamed = PageRecords(pages)
    records = list(streamed)

    assert [{k: v for k, v in r.items() if k != "fetched_at"} for r in records] == [
        {"n": 1},
        {"value": 2},
        {"n": 3},
    ]
    assert streamed.pages == 3
    stamps = [datetime.datetime.fromisoformat(r["fetched_at"]) for r in records]
    assert all(stamp.utcoffset() == datetime.timedelta(0) for stamp in stamps)


def test_a_records_path_picks_the_records_of_each_page():
    pages = [{"result": {"entries": [{"n": 1}]}}, {"result": {"entries": {"n": 2}}}, {"result": {}}]

    records = list(PageRecords(pages, "result.entries"))

    assert [r["n"] for r in records] == [1, 2]


# -- atomic replacement ---------------------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from airflow_provider_bankapi.client.api import next_cursor_params
    from airflow_provider_bankapi.operators.bankapi import BankingApiOperator

    BankingApiOperator(
        task_id="transactions", endpoint="/accounts/123/transactions", query_params={"limit": 1},
        pagination_function=next_cursor_params, output_path=sys.argv[1], asset_alias="",
    ).execute({})
    """
)


def temporaries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".tmp"))


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.02)


@pytest.mark.bankapi_sandbox(latency=0.1)  # one page a tenth of a second: the kill lands mid-write
def test_a_writer_killed_mid_write_leaves_the_previous_file_and_the_next_run_sweeps_its_temporary(
    bankapi_sandbox, airflow_connection, tmp_path, monkeypatch
):
    airflow_connection("bankapi_default", bankapi_sandbox.connection)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out"
    target = output_location((out / "transactions.jsonl").as_uri())
    write_jsonl(target, [{"previous": n} for n in range(3)])
    previous = (out / "transactions.jsonl").read_bytes()

    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)])
    try:
        # Killed once some records are on disk (in its temporary file, or at the target if written in place).
        wait_for(
            lambda: (
                any(p.stat().st_size for p in temporaries(out))
                or (out / "transactions.jsonl").read_bytes() != previous
            )
        )
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    assert (out / "transactions.jsonl").read_bytes() == previous
    (left,) = temporaries(out)
    assert left.name.startswith(".transactions.jsonl.")
    assert [p.name for p in out.glob("*.jsonl")] == ["transactions.jsonl"]  # a glob sees the output alone
    # A live writer's temporary (touched just now) is kept; one untouched for longer than a write can
    # pause is a dead writer's, deleted by the next run for the same target.
    stale = time.time() - STALE_TEMPORARY_SECONDS - 1
    os.utime(left, (stale, stale))
    live = out / ".transactions.jsonl.0123456789abcdef.tmp"
    live.write_text("{}\n")

    assert write_jsonl(target, [{"next": 1}]) == 1
    assert temporaries(out) == [live]
    assert read_lines(out / "transactions.jsonl") == [{"next": 1}]


def read_lines(path: Path) -> list[object]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def memory_store(monkeypatch):
    """``memory://`` attached as an object store: fsspec's in-memory filesystem moves by copy then delete,
    as s3fs and gcsfs do. Emptied afterwards.
    """
    filesystem = MemoryFileSystem()
    monkeypatch.setattr(MemoryFileSystem, "store", {})
    monkeypatch.setattr(MemoryFileSystem, "pseudo_dirs", [""])
    monkeypatch.setitem(store._STORE_CACHE, "memory", store.ObjectStore("memory", None, fs=filesystem))
    return filesystem


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda path, rows: write_jsonl(path, rows), id="jsonl"),
        pytest.param(lambda path, rows: write_csv(path, list(rows)), id="csv"),
    ],
)
@pytest.mark.parametrize(
    "url", [pytest.param("file", id="local-file"), pytest.param("memory", id="object-store")]
)
def test_a_failed_rerun_leaves_the_previous_output_and_a_good_one_replaces_it(
    memory_store, tmp_path, url, write
):
    where = tmp_path.as_uri() if url == "file" else "memory://bucket/daily"
    target = output_location(f"{where}/balances.out")
    write(target, [{"account_id": "1"}, {"account_id": "2"}])
    complete = target.read_bytes()

    def failing():
        yield {"account_id": "3"}
        raise RuntimeError("page 2 failed")

    with pytest.raises(RuntimeError, match="page 2"):
        write(target, failing())

    assert target.read_bytes() == complete
    assert [p.name for p in target.parent.iterdir()] == ["balances.out"]  # the temporary is gone too
    write(target, [{"account_id": "1"}, {"account_id": "2"}])
    assert target.read_bytes() == complete  # replaced, never appended to


def test_an_output_path_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="is a directory") as caught:
        write_jsonl(output_location(tmp_path.as_uri()), [{"n": 1}])
    assert caught.value.field == "output_path"
    assert list(tmp_path.iterdir()) == []

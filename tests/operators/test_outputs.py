"""Writing JSON Lines and CSV through ObjectStoragePath (local files here; s3:// etc. use the same code)."""

from __future__ import annotations

import csv
import json

import pytest

from airflow_provider_bankapi.errors import ConfigurationError
from airflow_provider_bankapi.operators.outputs import (
    asset_uri,
    counted_pages,
    output_format,
    output_location,
    page_records,
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


@pytest.mark.parametrize(
    ("page", "records"),
    [
        pytest.param({"items": [1, 2], "next_cursor": "c"}, [1, 2], id="items"),
        pytest.param({"items": []}, [], id="empty-items"),
        pytest.param({"available": "1.00"}, [{"available": "1.00"}], id="no-items"),
        pytest.param({"items": "not a list"}, [{"items": "not a list"}], id="items-not-a-list"),
        pytest.param([1, 2], [[1, 2]], id="a-list-page-is-one-record"),
    ],
)
def test_the_records_of_a_page(page, records):
    assert page_records(page) == records


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


def test_csv_has_every_column_account_id_first_and_nested_values_as_json(tmp_path):
    rows = [
        {"available": "1.00", "account_id": "1"},
        {"account_id": "2", "available": "2.00", "limits": {"pix": "100.00"}, "note": None},
    ]
    path = output_location((tmp_path / "b.csv").as_uri())

    assert write_csv(path, rows, first_column="account_id") == 2
    with (tmp_path / "b.csv").open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["account_id", "available", "limits", "note"]
    assert read[0] == {"account_id": "1", "available": "1.00", "limits": "", "note": ""}
    assert json.loads(read[1]["limits"]) == {"pix": "100.00"}


def test_pages_are_counted_as_their_records_stream_by():
    counter = [0]
    pages = [{"items": [1, 2]}, {"items": [3]}, {"items": []}]

    assert list(counted_pages(pages, counter)) == [1, 2, 3]
    assert counter == [3]

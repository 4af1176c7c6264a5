"""Where the operators write what they fetched: JSON Lines or CSV at an object-storage URL.

``ObjectStoragePath`` (``airflow.sdk``) reaches local files (``file:///...``) and every store an
fsspec filesystem exists for (``s3://``, ``gs://``, ...), with its credentials from an Airflow
connection when the URL names one (``s3://aws_default@bucket/key``). The written file is announced as an
asset event through an :class:`~airflow.sdk.AssetAlias`: the path is usually templated (a date in
it), so the concrete asset is only known at run time, which is what an alias is for.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, ObjectStoragePath

from airflow_provider_bankapi.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterator

FORMATS = ("jsonl", "csv")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_LOCAL_PROTOCOLS = ("", "file", "local")


def output_location(url: str) -> ObjectStoragePath:
    """The ``ObjectStoragePath`` of an output URL (``file:///data/x.jsonl``, ``s3://bucket/x.csv``) or of
    an absolute local path.
    """
    text = str(url).strip()
    if not text:
        raise ConfigurationError("output_path is empty.", field="output_path")
    if "://" not in text and not text.startswith("/"):
        raise ConfigurationError(
            f"output_path {text!r} must be a URL such as file:///data/balances.jsonl or s3://bucket/key, "
            "or an absolute path.",
            field="output_path",
        )
    return ObjectStoragePath(text if "://" in text else f"file://{text}")


def output_format(path: ObjectStoragePath, requested: str | None = None) -> str:
    """``"jsonl"`` or ``"csv"``: the one asked for, else the one the file name's suffix says (default
    JSON Lines).
    """
    if requested is not None:
        fmt = requested.strip().lower().lstrip(".")
        fmt = "jsonl" if fmt in ("json", "ndjson", "jsonlines") else fmt
        if fmt not in FORMATS:
            raise ConfigurationError(
                f"output_format must be one of {', '.join(FORMATS)}; got {requested!r}.",
                field="output_format",
            )
        return fmt
    return _SUFFIXES.get(path.suffix.lower(), "jsonl")


def asset_uri(path: ObjectStoragePath) -> str:
    """The URI of the asset a written file stands for (``file:///...`` for local files)."""
    text = str(path)
    return text if "://" in text else f"file://{text}"


def page_records(page: Any) -> list[Any]:
    """The records of one page: the items of its ``"items"`` list when it has one, else the page itself."""
    if isinstance(page, Mapping) and isinstance(page.get("items"), list):
        return list(page["items"])
    return [page]


def _prepare(path: ObjectStoragePath) -> None:
    # Object stores have no directories to make (and s3fs would make a bucket); local files need them.
    if path.protocol in _LOCAL_PROTOCOLS:
        path.parent.mkdir(parents=True, exist_ok=True)


def _discard(path: ObjectStoragePath) -> None:
    try:
        path.unlink()
    except (FileNotFoundError, OSError):
        pass


def write_jsonl(path: ObjectStoragePath, records: Iterable[Any]) -> int:
    """Write one JSON document per line; return how many. A failure while the records are still being
    produced (a page that fails its check, the bank going away) removes the half-written file.
    """
    _prepare(path)
    count = 0
    try:
        with path.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                count += 1
    except BaseException:
        _discard(path)
        raise
    return count


def _cell(value: Any) -> Any:
    if isinstance(value, (Mapping, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "" if value is None else value


def csv_columns(rows: Iterable[Mapping[str, Any]], first: str | None = None) -> list[str]:
    """Every key of every row in the order first seen, ``first`` (e.g. ``account_id``) leading."""
    columns: dict[str, None] = {first: None} if first else {}
    for row in rows:
        columns.update(dict.fromkeys(map(str, row)))
    return list(columns)


def write_csv(
    path: ObjectStoragePath, rows: list[Mapping[str, Any]], *, first_column: str | None = None
) -> int:
    """Write rows as CSV with a header (nested values as JSON text); return how many rows."""
    _prepare(path)
    columns = csv_columns(rows, first_column)
    try:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({str(key): _cell(value) for key, value in row.items()})
    except BaseException:
        _discard(path)
        raise
    return len(rows)


def counted_pages(pages: Iterable[Any], counter: list[int]) -> Iterator[Any]:
    """The records of each page, counting the pages into ``counter[0]`` as they go by."""
    for page in pages:
        counter[0] += 1
        yield from page_records(page)


def default_asset_alias(dag_id: str | None, task_id: str) -> str:
    return f"bankapi__{dag_id}__{task_id}" if dag_id else f"bankapi__{task_id}"


def emit_asset_event(
    context: Mapping[str, Any], alias: str, path: ObjectStoragePath, extra: dict[str, Any]
) -> str:
    """Announce the written file as an asset event through the task's alias; return the asset's URI."""
    uri = asset_uri(path)
    context["outlet_events"][AssetAlias(name=alias)].add(Asset(uri=uri), extra=extra)
    return uri

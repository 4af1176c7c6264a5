"""Where the operators write what they fetched: JSON Lines, CSV or a body as it came, to object storage.

``ObjectStoragePath`` (``airflow.sdk``) reaches local files (``file:///...``) and every store an
fsspec filesystem exists for (``s3://``, ``gs://``, ...), with its credentials from an Airflow
connection when the URL names one (``s3://aws_default@bucket/key``). The written file is announced as an
asset event through an :class:`~airflow.sdk.AssetAlias`: the path is usually templated (a date in
it), so the concrete asset is only known at run time, which is what an alias is for.

A file is written to a temporary object beside it and moved into place only when complete, so a run that
fails or is killed never truncates or deletes the previous output, and a rerun replaces it (never appends).

Numbers are written with the bank's digits (``documents.py``): JSON Lines as JSON numbers, CSV as
their text. A CSV row has one column per field: a nested object's fields get columns of their own named
``parent.child`` (money ``{"amount": {"amount": 1.00, "currency": "BRL"}}`` becomes the columns
``amount.amount`` and ``amount.currency``); a list stays JSON text in its one cell. Every record written
carries ``fetched_at``, the UTC time (ISO 8601) its page came back from the bank.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import secrets
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, ObjectStoragePath

from airflow_provider_bankapi.documents import dumps, number_text, records_of
from airflow_provider_bankapi.errors import BankingApiError, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterator

FORMATS = ("jsonl", "csv")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_LOCAL_PROTOCOLS = ("", "file", "local")
_TEMPORARY_SUFFIX = ".tmp"
#: The field every written record carries: when its page came back from the bank (UTC, ISO 8601).
FETCHED_AT = "fetched_at"
#: A temporary file untouched this long was left by a run that died: a live writer touches it with every
#: record, and one page call between two records (retries and backoff included) takes minutes at most.
STALE_TEMPORARY_SECONDS = 15 * 60


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


def fetched_now() -> str:
    """The time now as ``fetched_at`` writes it: UTC, ISO 8601, to the microsecond (``...+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def stamped(record: Any, fetched_at: str) -> dict[str, Any]:
    """A record as written: its fields and ``fetched_at`` (a record that is not an object is ``value``)."""
    fields = dict(record) if isinstance(record, Mapping) else {"value": record}
    return {**fields, FETCHED_AT: fetched_at}


def _prepare(path: ObjectStoragePath) -> None:
    # Object stores have no directories to make (and s3fs would make a bucket); local files need them.
    if path.protocol in _LOCAL_PROTOCOLS:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise ConfigurationError(f"output_path {path} is a directory, not a file.", field="output_path")


def _discard(path: ObjectStoragePath) -> None:
    try:
        path.unlink()
    except (FileNotFoundError, OSError):
        pass


def _temporary_prefix(path: ObjectStoragePath) -> str:
    return f".{path.name}."


def temporary_for(path: ObjectStoragePath) -> ObjectStoragePath:
    """A new temporary object beside ``path``: same directory or bucket (so that the final move is a rename
    on a local disk), hidden from readers and from globs of the output's pattern by the leading dot (Spark,
    Hive and shell globs skip dot files) and the ``.tmp`` suffix (``*.jsonl`` does not match it).
    """
    return path.with_name(f"{_temporary_prefix(path)}{secrets.token_hex(8)}{_TEMPORARY_SUFFIX}")


def _age(path: ObjectStoragePath, now: datetime.datetime) -> float | None:
    try:
        modified: datetime.datetime = path.fs.modified(path.path)
    except (NotImplementedError, OSError, ValueError, KeyError):
        return None  # a store that cannot tell: leave the file (it may be a live writer's)
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=datetime.timezone.utc)
    return (now - modified).total_seconds()


def sweep_temporaries(path: ObjectStoragePath) -> None:
    """Delete the temporary objects of ``path`` that runs killed mid-write left behind (a live writer's
    temporary object, touched within :data:`STALE_TEMPORARY_SECONDS`, is kept).
    """
    prefix, now = _temporary_prefix(path), datetime.datetime.now(datetime.timezone.utc)
    try:
        siblings = list(path.parent.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    for sibling in siblings:
        if sibling.name.startswith(prefix) and sibling.name.endswith(_TEMPORARY_SUFFIX):
            age = _age(sibling, now)
            if age is not None and age > STALE_TEMPORARY_SECONDS:
                _discard(sibling)


@contextlib.contextmanager
def replacing(path: ObjectStoragePath) -> Iterator[ObjectStoragePath]:
    """A temporary object to write the whole output to; moved onto ``path`` when the block ends well,
    deleted when it fails. A local file is renamed into place (atomic); an object store copies then
    deletes, so the final key appears only complete. Either way a reader sees the old output or the new one.
    """
    _prepare(path)
    sweep_temporaries(path)
    temporary = temporary_for(path)
    try:
        yield temporary
        temporary.replace(path)
    except BaseException:
        _discard(temporary)
        raise


def write_jsonl(path: ObjectStoragePath, records: Iterable[Any]) -> int:
    """Write one JSON document per line; return how many. The file replaces the previous one only when
    every record is written: a failure while the records are still being produced (a page that fails its
    check, the bank going away) leaves the previous file as it was.
    """
    count = 0
    with replacing(path) as temporary, temporary.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(dumps(record) + "\n")
            handle.flush()  # keeps the temporary file's mtime fresh, so that no sweep takes it for dead
            count += 1
    return count


def write_bytes(path: ObjectStoragePath, body: bytes) -> int:
    """Write a body as it is (a CSV statement, a PDF...); return its size. Replaces the previous file only
    when complete.
    """
    with replacing(path) as temporary, temporary.open("wb") as handle:
        handle.write(body)
    return len(body)


def _cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, (Mapping, list)):
        return dumps(value)
    return "" if value is None else value


def flat_row(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A row with its nested objects' fields as columns of their own, named ``parent.child``."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_row(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def csv_columns(rows: Iterable[Mapping[str, Any]], first: str | None = None) -> list[str]:
    """Every key of every row in the order first seen, ``first`` (e.g. ``account_id``) leading."""
    columns: dict[str, None] = {first: None} if first else {}
    for row in rows:
        columns.update(dict.fromkeys(map(str, row)))
    return list(columns)


def write_csv(
    path: ObjectStoragePath, rows: Sequence[Mapping[str, Any]], *, first_column: str | None = None
) -> int:
    """Write rows as CSV with a header (nested objects flattened into ``parent.child`` columns, lists as
    JSON text); return how many rows. The file replaces the previous one only when complete.
    """
    rows = [flat_row(row) for row in rows]
    columns = csv_columns(rows, first_column)
    with replacing(path) as temporary, temporary.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({str(key): _cell(value) for key, value in row.items()})
    return len(rows)


def counted_pages(
    pages: Iterable[Any], counter: list[int], records_path: str | None = None
) -> Iterator[dict[str, Any]]:
    """The records of each page (see ``documents.records_of``), stamped with the time the page came, counting
    the pages into ``counter[0]`` as they go by.
    """
    for page in pages:
        fetched_at = fetched_now()
        counter[0] += 1
        for record in records_of(page, records_path):
            yield stamped(record, fetched_at)


def balance_rows(
    outcomes: Iterable[tuple[str, Any]], delivered: dict[str, Any], failed: dict[str, BankingApiError]
) -> Iterator[dict[str, Any]]:
    """The row of each ``(account_id, balance or BankingApiError)`` as it arrives, noting on the way each
    id delivered (to None: the balance goes to the file, not to memory) and each failure.
    """
    for account, outcome in outcomes:
        if isinstance(outcome, BankingApiError):
            failed[account] = outcome
        else:
            delivered[account] = None
            yield {**balance_row(account, outcome), FETCHED_AT: fetched_now()}


def balance_row(account: str, balance: Any) -> dict[str, Any]:
    """An account's row in the file: ``account_id`` first, then the balance's fields (or ``balance``)."""
    if isinstance(balance, dict):
        return {"account_id": account, **{k: v for k, v in balance.items() if k != "account_id"}}
    return {"account_id": account, "balance": balance}


def default_asset_alias(dag_id: str | None, task_id: str) -> str:
    return f"bankapi__{dag_id}__{task_id}" if dag_id else f"bankapi__{task_id}"


def emit_asset_event(
    context: Mapping[str, Any], alias: str, path: ObjectStoragePath, extra: dict[str, Any]
) -> str:
    """Announce the written file as an asset event through the task's alias; return the asset's URI."""
    uri = asset_uri(path)
    context["outlet_events"][AssetAlias(name=alias)].add(Asset(uri=uri), extra=extra)
    return uri

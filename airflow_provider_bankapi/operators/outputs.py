"""Where the operators write what they fetched: JSON Lines, CSV or a body as it came, to object storage.

``ObjectStoragePath`` (``airflow.sdk``) reaches local files (``file:///...``) and every store an
fsspec filesystem exists for (``s3://``, ``gs://``, ...), with its credentials from an Airflow
connection when the URL names one (``s3://aws_default@bucket/key``). The written file is announced as an
asset event through an :class:`~airflow.sdk.AssetAlias`: the path is usually templated (a date in
it), so the concrete asset is only known at run time, which is what an alias is for.

A file is written to a temporary object beside it and moved into place only when complete, so a run that
fails or is killed never truncates or deletes the previous output, and a rerun replaces it (never appends).
The temporary object is written through the path's fsspec filesystem, not ``ObjectStoragePath.open``: that
one reports every file it writes to Airflow's hook lineage, and a random temporary name would become a
dataset of its own in lineage catalogs (the operators report the final file themselves).

On a local disk what is written is private by default: files 0600 from the moment they exist, the folders
made for them 0700, and a folder on the way that another user owns (who could rename or replace what is
in it) is refused. Object stores have their own access control: these modes do not apply there.
An output path is taken as written: one with a ``.`` or ``..`` segment, which would resolve somewhere
else than it reads (outside the folder it names), is refused.

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
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from airflow.sdk import Asset, AssetAlias, ObjectStoragePath

from airflow_provider_bankapi.documents import dumps, number_text, records_of
from airflow_provider_bankapi.errors import BankingApiError, ConfigurationError, printable

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
#: The mode of the files the operators write on a local disk: the owner alone reads them.
PRIVATE_FILE_MODE = 0o600


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
    if not text.isprintable():  # URL parsing drops a newline or a tab silently: 1\n23 would be 123
        raise ConfigurationError(
            f"output_path '{printable(text)}' holds control characters.", field="output_path"
        )
    path = ObjectStoragePath(text if "://" in text else f"file://{text}")
    _check_taken_as_written(path)
    return path


def _check_taken_as_written(path: ObjectStoragePath) -> None:
    # A templated path (an id, a Param in it) must not climb out of the folder it starts with: a dot
    # segment, even percent-encoded (some stores decode keys), would resolve elsewhere than it reads.
    if any(unquote(segment) in (".", "..") for segment in str(path.path).split("/")):
        raise ConfigurationError(
            f"output_path '{path}' has a '.' or '..' segment: it resolves outside the folder it names.",
            field="output_path",
            hint="Write the path without '.' or '..'; check what the templated parts (ids, Params) rendered.",
        )


def folder_mode(file_mode: int) -> int:
    """The mode of a folder made for files of ``file_mode``: search permission wherever read is given
    (0600 -> 0700, 0640 -> 0750).
    """
    return file_mode | ((file_mode & 0o444) >> 2)


def check_file_mode(file_mode: Any) -> int:
    """``file_mode`` if it is a mode whose owner can read and write the file, else a ValueError."""
    if isinstance(file_mode, bool) or not isinstance(file_mode, int) or file_mode & ~0o777:
        raise ValueError(f"output_file_mode must be a file mode such as 0o600 or 0o640; got {file_mode!r}.")
    if file_mode & 0o600 != 0o600:
        raise ValueError(f"output_file_mode must let its owner read and write (0o600); got {file_mode:#o}.")
    return file_mode


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


def _is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in _LOCAL_PROTOCOLS


def _make_private_folders(folder: Path, mode: int) -> None:
    """Make the missing folders of ``folder``, parents first, each with ``mode``; then refuse the chain if a
    folder on it (or a link in it) belongs to another user than this one or root: its owner could rename
    what is inside and put other files in its place.
    """
    missing = [path for path in (folder, *folder.parents) if not os.path.lexists(path)]
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile: its owner is checked below
            os.mkdir(path, mode)
    for path in (folder, *folder.parents):
        owner = os.lstat(path).st_uid
        if owner not in (os.geteuid(), 0):
            raise ConfigurationError(
                f"The output folder {printable(str(path))} is owned by uid {owner}, not by this user "
                f"(uid {os.geteuid()}) or root: its owner could replace the files written there.",
                field="output_path",
                hint="Write under a folder this user owns, such as one under AIRFLOW_HOME; or remove the "
                "folder if nobody should have made it.",
            )


def _create_private(path: ObjectStoragePath, mode: int) -> None:
    # Created with its mode (never a moment readable by others), new (not a file or link put there first).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    os.close(os.open(path.path, flags, mode))


def _prepare(path: ObjectStoragePath, mode: int) -> None:
    # Object stores have no directories to make (and s3fs would make a bucket); local files need them.
    if _is_local(path):
        _make_private_folders(Path(path.parent.path), folder_mode(mode))
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
def replacing(path: ObjectStoragePath, mode: int = PRIVATE_FILE_MODE) -> Iterator[ObjectStoragePath]:
    """A temporary object to write the whole output to; moved onto ``path`` when the block ends well,
    deleted when it fails. A local file is renamed into place (atomic); an object store copies then
    deletes, so the final key appears only complete. Either way a reader sees the old output or the new one.

    :param mode: a local file's mode (its folders get :func:`folder_mode`); ignored by object stores.
    """
    _prepare(path, mode)
    sweep_temporaries(path)
    temporary = temporary_for(path)
    try:
        if _is_local(temporary):
            _create_private(temporary, mode)
        yield temporary
        temporary.replace(path)
    except BaseException:
        _discard(temporary)
        raise


def open_unrecorded(path: ObjectStoragePath, mode: str, **kwargs: Any) -> Any:
    """``path`` opened through its fsspec filesystem, unseen by hook lineage (see the module's docstring)."""
    return path.fs.open(path.path, mode, **kwargs)


def write_jsonl(path: ObjectStoragePath, records: Iterable[Any], *, mode: int = PRIVATE_FILE_MODE) -> int:
    """Write one JSON document per line; return how many. The file replaces the previous one only when
    every record is written: a failure while the records are still being produced (a page that fails its
    check, the bank going away) leaves the previous file as it was.
    """
    count = 0
    with replacing(path, mode) as temporary, open_unrecorded(temporary, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(dumps(record) + "\n")
            handle.flush()  # keeps the temporary file's mtime fresh, so that no sweep takes it for dead
            count += 1
    return count


def write_bytes(path: ObjectStoragePath, body: bytes, *, mode: int = PRIVATE_FILE_MODE) -> int:
    """Write a body as it is (a CSV statement, a PDF...); return its size. Replaces the previous file only
    when complete.
    """
    with replacing(path, mode) as temporary, open_unrecorded(temporary, "wb") as handle:
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
    path: ObjectStoragePath,
    rows: Sequence[Mapping[str, Any]],
    *,
    first_column: str | None = None,
    mode: int = PRIVATE_FILE_MODE,
) -> int:
    """Write rows as CSV with a header (nested objects flattened into ``parent.child`` columns, lists as
    JSON text); return how many rows. The file replaces the previous one only when complete.
    """
    rows = [flat_row(row) for row in rows]
    columns = csv_columns(rows, first_column)
    with (
        replacing(path, mode) as temporary,
        open_unrecorded(temporary, "w", encoding="utf-8", newline="") as handle,
    ):
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({str(key): _cell(value) for key, value in row.items()})
    return len(rows)


class PageRecords:
    """The records of each page (see ``documents.records_of``) as the pages arrive, stamped with the time
    their page came; :attr:`pages` counts the pages read so far.
    """

    def __init__(self, pages: Iterable[Any], records_path: str | None = None) -> None:
        self._pages = pages
        self._records_path = records_path
        self.pages = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for page in self._pages:
            fetched_at = fetched_now()
            self.pages += 1
            for record in records_of(page, self._records_path):
                yield stamped(record, fetched_at)


class BalanceRows:
    """The row of each ``(account_id, balance or BankingApiError)`` as it arrives; :attr:`delivered` holds
    each id delivered so far (to None: the balance goes to the file, not to memory), :attr:`failed` each
    failure.
    """

    def __init__(self, outcomes: Iterable[tuple[str, Any]]) -> None:
        self._outcomes = outcomes
        self.delivered: dict[str, Any] = {}
        self.failed: dict[str, BankingApiError] = {}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for account, outcome in self._outcomes:
            if isinstance(outcome, BankingApiError):
                self.failed[account] = outcome
            else:
                self.delivered[account] = None
                yield {**balance_row(account, outcome), FETCHED_AT: fetched_now()}


def balance_row(account: str, balance: Any) -> dict[str, Any]:
    """An account's row in the file: ``account_id`` (the id asked for) first, then the balance's fields
    (or ``balance``). When the bank's answer names another account, its ``account_id`` is kept too, as
    ``bank_account_id`` beside the one asked for: the mismatch shows in the row instead of being hidden.
    """
    if isinstance(balance, dict):
        row: dict[str, Any] = {"account_id": account}
        if "account_id" in balance and str(balance["account_id"]) != account:
            row["bank_account_id"] = balance["account_id"]
        return {**row, **{k: v for k, v in balance.items() if k != "account_id"}}
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

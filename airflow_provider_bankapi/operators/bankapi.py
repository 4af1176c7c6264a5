"""Operators for the Banking API: any protected call, and the balances of many accounts.

Both build their hook at execute time (nothing touches the connection while the DAG is parsed), return
plain JSON to XCom, or write JSON Lines / CSV to an object-storage URL and return where and how much;
BankingApiOperator also returns or writes answers that are not JSON (text, bytes) as they came.
No token ever reaches XCom: the token endpoint is not a resource these operators call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_provider_bankapi.booking_window import BookingWindow as BookingWindow  # the operator's argument
from airflow_provider_bankapi.client.fields import DEFAULT_MAX_WORKERS, MAX_WORKERS
from airflow_provider_bankapi.errors import BankingApiError, ConfigurationError
from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from airflow_provider_bankapi.operators.base import BankingApiBaseOperator
from airflow_provider_bankapi.operators.booking import (
    load_written_keys,
    remember_written_keys,
    written_keys_asset,
)
from airflow_provider_bankapi.operators.http_options import (
    check_header_names,
    checked_headers,
    checked_response_type,
    text_body,
)
from airflow_provider_bankapi.operators.outputs import (
    BalanceRows,
    PageRecords,
    fetched_now,
    output_format,
    output_location,
    stamped,
    write_bytes,
    write_csv,
    write_jsonl,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import requests
    from airflow.sdk import Asset, Context

    from airflow_provider_bankapi.booking_window import WrittenKeys
    from airflow_provider_bankapi.client.batch import BatchResult

#: The resource the balance operator reads, as lineage names it: one dataset for every account.
BALANCE_ENDPOINT = "/accounts/{account_id}/balance"
_ACCOUNT_SEPARATORS = re.compile(r"[\s,;]+")


class ResponseCheckFailed(BankingApiError):
    """The operator's ``response_check`` returned False for an answer."""


class BalancesPartlyFailedError(BankingApiError):
    """Some balances could not be fetched; the others were delivered first.

    :param succeeded: the account ids whose balance was delivered.
    :param failed: account id -> the error that account's call ended with.
    :param delivered_to: where the successes went (a URL, or the XCom key).
    """

    def __init__(
        self, message: str, *, succeeded: list[str], failed: dict[str, BankingApiError], delivered_to: str
    ) -> None:
        super().__init__(
            message, hint="Each failed account's hint is in the message; the others need no rerun."
        )
        self.succeeded = succeeded
        self.failed = failed
        self.delivered_to = delivered_to


class BankingApiOperator(BankingApiBaseOperator):
    """Calls any protected endpoint of the Banking API and returns its JSON, or writes it as JSON Lines.

    :param endpoint: the path under the connection's Base URL (templated), e.g. ``/accounts``.
    :param method: the HTTP method (templated), default ``GET``.
    :param query_params: query parameters (templated). Not ``params``: that name is Airflow's own.
    :param json: a JSON body (templated), for POST/PUT/PATCH.
    :param headers: extra request headers (templated values), e.g. ``{"Accept": "text/csv"}``. Never
        ``Authorization``, ``Proxy-Authorization``, ``Host``, ``Cookie`` or what requests computes
        (``Content-Length``, ``Transfer-Encoding``, ``Connection``): the provider sets those itself.
    :param response_type: ``"json"`` (default): the decoded JSON; ``"text"``: the body as a string (in
        the charset of its Content-Type, UTF-8 when none); ``"bytes"``: the body as it came. Bytes
        cannot go to XCom: give ``output_path`` (or a ``response_filter`` that returns something XCom
        holds). With ``output_path``, a text or bytes answer is written as it came.
    :param bankapi_conn_id: the ``bankapi`` connection.
    :param response_check: ``callable(response) -> bool`` (the decoded JSON, text or bytes); False fails
        the task. With pagination, called for every page.
    :param response_filter: ``callable(response_json) -> value``: what the task returns (with
        pagination it receives the list of pages; with ``output_path`` a list it returns is written
        one item per line).
    :param pagination: how the resource pages (GET only; the result is then the list of pages):
        ``"cursor"`` (``{"next_cursor": ...}`` sent back as ``cursor=``), ``"links"`` (the body's
        ``links.next``), ``"link_header"`` (an RFC 8288 ``Link: <...>; rel="next"``), ``"page"`` (``page=1,
        2, ...`` until ``meta.totalPages`` or an empty page), a value of
        :mod:`airflow_provider_bankapi.pagination` for other names (``Links(next_path=...)``,
        ``PageNumbers(page_size=100)``...), or a function as ``pagination_function``. A next link is
        followed only under the connection's Base URL; any other fails the task before a request to it.
    :param pagination_function: ``callable(page_json) -> dict | None``: the params to add for the next
        page, None on the last one (:func:`~airflow_provider_bankapi.client.api.next_cursor_params` fits
        ``{"next_cursor": ...}`` pages). The same as ``pagination=`` a function.
    :param max_pages: stop with an error after this many pages (a resource that never says "last").
    :param records_path: where a page's records are, a dotted path (``"data"``): the list there, or the
        object there as one record. Default: a page that is a list; else its ``"items"`` or ``"data"``;
        else the page itself.
    :param output_path: an object-storage URL (templated), e.g. ``file:///data/tx-{{ ds }}.jsonl`` or
        ``s3://bucket/tx.jsonl``: the records of every page are written there, one JSON line (or CSV row)
        each with ``fetched_at`` (UTC), and the task returns ``{"path": ..., "records": N, "pages": M}``.
    :param output_format: ``"jsonl"`` or ``"csv"``; default from the path's suffix (JSON Lines unless
        ``.csv``). CSV gives a nested object's fields columns of their own (``amount.currency``).
    :param max_response_bytes: the largest answer of one call, in bytes, on the wire and once inflated, in
        place of the connection's ``max_response_bytes`` (default 16 MiB): raise it for a legitimately
        large resource such as a long statement. A larger answer fails the task with
        ``ResponseTooLargeError`` while it is read.
    :param asset_alias: the name of the asset alias the written file is announced through (default
        ``bankapi__<dag_id>__<task_id>``; ``""`` announces nothing).
    :param output_file_mode: the mode of a file written to a local disk, default ``0o600`` (its folders
        ``0o700``); see :class:`~airflow_provider_bankapi.operators.base.BankingApiBaseOperator`.
    :param window: a :class:`BookingWindow`: the run's data interval becomes the bank's local booking
        dates, sent as two query parameters (``fromBookingDate``/``toBookingDate`` by default), the first
        one ``lookback`` earlier to catch transactions posted late.
    :param dedupe_key: with ``window`` and ``output_path``: the dotted path of a record's key
        (``"transactionId"``). Each key is written once in a run, and not again by a later run while the
        lookback asks for its date again; a rerun of the same interval rewrites its own records. The keys
        are remembered in the asset state of the task's inlet ``bankapi__<dag_id>__<task_id>__written_keys``,
        updated only after the file is in place; runs of the task go one at a time
        (``max_active_tis_per_dag=1`` unless given).
    """

    template_fields: Sequence[str] = (
        "endpoint",
        "method",
        "query_params",
        "json",
        "headers",
        "output_path",
        "output_format",
    )
    template_fields_renderers = {"query_params": "json", "json": "json", "headers": "json"}
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        endpoint: str,
        method: str = "GET",
        query_params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        response_type: str = "json",
        bankapi_conn_id: str = BankingApiHook.default_conn_name,
        response_check: Callable[[Any], bool] | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        pagination_function: Callable[[Any], Mapping[str, Any] | None] | None = None,
        pagination: Any = None,
        max_pages: int = 10_000,
        records_path: str | None = None,
        output_path: str | None = None,
        output_format: str | None = None,
        asset_alias: str | None = None,
        window: BookingWindow | None = None,
        dedupe_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        if dedupe_key is not None:
            # One run's keys read, then written: two runs of the task at once would lose one's keys.
            kwargs.setdefault("max_active_tis_per_dag", 1)
        super().__init__(
            bankapi_conn_id=bankapi_conn_id, output_path=output_path, asset_alias=asset_alias, **kwargs
        )
        self.window = window
        self.dedupe_key = dedupe_key
        self.written_keys_asset = self._check_window(window, dedupe_key, output_path)
        if pagination is not None and pagination_function is not None:
            raise ValueError("Give pagination or pagination_function, not both.")
        # Checked here, at parse time: a misspelt style fails the DAG file, not a run.
        from airflow_provider_bankapi.pagination import pagination_style

        pagination = pagination if pagination is not None else pagination_function
        self.paginator = (
            None if pagination is None else pagination_style(pagination, records_path=records_path)
        )
        self.records_path = records_path
        self.output_format = output_format
        self.endpoint = endpoint
        self.endpoint_template = endpoint  # as written: the resource lineage names (never rendered)
        self.method = method
        self.query_params = query_params
        self.json = json
        self.response_check = response_check
        self.response_filter = response_filter
        self.pagination_function = pagination_function
        self.max_pages = max_pages
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1.")
        self.headers = headers
        check_header_names(headers)
        self.response_type = checked_response_type(
            response_type,
            paginated=self.paginator is not None,
            with_headers=bool(self.headers),
            bytes_to_xcom=output_path is None and response_filter is None and self.do_xcom_push,
        )
        if dedupe_key is not None and self.response_type != "json":
            raise ConfigurationError(
                f"dedupe_key reads the key of each JSON record; response_type {self.response_type!r} "
                "writes the answer as it came.",
                field="dedupe_key",
            )
        self._written_keys: WrittenKeys | None = None  # this run's, once its booking dates are known

    def _check_window(
        self, window: BookingWindow | None, dedupe_key: str | None, output_path: str | None
    ) -> Asset | None:
        """The asset remembering the written keys (None without ``dedupe_key``); refuses, while the DAG is
        parsed, a window that is not a :class:`BookingWindow` and a ``dedupe_key`` without its window or file.
        """
        if window is not None and not isinstance(window, BookingWindow):
            raise ConfigurationError(
                f"window must be a BookingWindow; got {type(window).__name__}.",
                field="window",
                hint="from airflow_provider_bankapi.operators.bankapi import BookingWindow",
            )
        if dedupe_key is None:
            return None
        if not isinstance(dedupe_key, str) or not dedupe_key.strip():
            raise ConfigurationError(
                "dedupe_key must be a dotted path, e.g. 'transactionId'.", field="dedupe_key"
            )
        if window is None or output_path is None:
            raise ConfigurationError(
                "dedupe_key needs window= (its lookback bounds what is remembered) and output_path= (the "
                "keys remembered are those written there).",
                field="dedupe_key",
            )
        dag_id = self.dag_id if self.has_dag() else None  # type: ignore[no-untyped-call]
        asset = written_keys_asset(dag_id, self.task_id)
        self.inlets = [*self.inlets, asset]
        return asset

    def lineage_endpoint(self) -> str:
        return str(self.endpoint_template)

    # -- calls --------------------------------------------------------------------------------------

    def _validate(self) -> str:
        method = str(self.method).strip().upper()
        if self.paginator is not None and method != "GET":
            raise ConfigurationError("pagination pages through GET answers only.", field="method")
        # The client's own rule, asked before any call: under the Base URL, never the token endpoint.
        self.hook.url(self.endpoint)
        return method

    def _request(self, method: str) -> requests.Response:
        headers = checked_headers(self.headers)
        return self.hook.request(
            method, self.endpoint, params=self.query_params, json=self.json, headers=headers or None
        )

    def _call(self, method: str) -> Any:
        response = self._request(method)
        if not response.content:
            return None  # 204 No Content and friends
        return self.hook.json_of(response, method=method, path=str(self.endpoint))

    def _raw(self, context: Context, method: str) -> Any:
        """A text or bytes answer: returned (after the check and the filter), or written as it came."""
        response = self._request(method)
        body: Any = response.content
        if self.response_type == "text":
            body = text_body(response, method=method, path=str(self.endpoint))
        result = self._checked(body)
        if self.response_filter is not None:
            result = self.response_filter(result)
        if self.output_path is None:
            return result
        if self.response_filter is None:
            result = response.content  # as it came, whatever its charset
        if isinstance(result, str):
            result = result.encode("utf-8")
        if not isinstance(result, bytes):
            raise ConfigurationError(
                f"response_filter returned {type(result).__name__}; with response_type "
                f"{self.response_type!r} and output_path it must return text or bytes.",
                field="response_filter",
            )
        path = output_location(str(self.output_path))
        size = write_bytes(path, result, mode=self.output_file_mode)
        self.log.info("Wrote %d bytes to %s.", size, path)
        self._announce(context, path, {"bytes": size})
        return {"path": str(path), "bytes": size}

    def _checked(self, page: Any, number: int | None = None) -> Any:
        if self.response_check is not None and not self.response_check(page):
            where = f"page {number} of " if number is not None else ""
            raise ResponseCheckFailed(
                f"response_check returned False for {where}{self.method} {self.endpoint}.",
                hint="The bank answered 2xx, but not what this task expects; see the answer with the "
                "task's XCom of a run without the check, or in the bank's sandbox.",
            )
        return page

    def _pages(self) -> Any:
        assert self.paginator is not None
        pages = self.hook.paginate(
            self.endpoint, params=self.query_params, pagination=self.paginator, max_pages=self.max_pages
        )
        for number, page in enumerate(pages, start=1):
            yield self._checked(page, number)

    # -- execute ------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        method = self._validate()
        if self.window is not None:
            self._ask_for_booking_dates(context)
        if self.response_type != "json":
            return self._raw(context, method)
        if self.output_path is not None:
            return self._write(context, method)
        if self.paginator is not None:
            result: Any = list(self._pages())
            self.log.info("%s %s: %d pages.", method, self.endpoint, len(result))
        else:
            result = self._checked(self._call(method))
        return self.response_filter(result) if self.response_filter is not None else result

    def _ask_for_booking_dates(self, context: Context) -> None:
        assert self.window is not None
        dates = self.window.dates(context.get("data_interval_start"), context.get("data_interval_end"))
        window_params = self.window.params(dates)
        given = dict(self.query_params or {})
        for name in window_params:
            if name in given:
                raise ConfigurationError(
                    f"query_params sets {name!r}, which the window sets from the run's data interval.",
                    field="query_params",
                    hint="Remove it from query_params, or give the window other parameter names.",
                )
        self.query_params = {**given, **window_params}  # rendered already: what this run asks for
        self.log.info(
            "Booking dates %s to %s (%s), for the data interval %s to %s.",
            dates.first,
            dates.last,
            self.window.timezone,
            context.get("data_interval_start"),
            context.get("data_interval_end"),
        )
        if self.written_keys_asset is not None and self.dedupe_key is not None:
            self._written_keys = load_written_keys(
                context, self.written_keys_asset, self.window, dates, self.dedupe_key
            )

    def _write(self, context: Context, method: str) -> dict[str, Any]:
        path = output_location(str(self.output_path))
        fmt = output_format(path, self.output_format)
        lines: Any
        streamed: PageRecords | None = None
        if self.paginator is not None and self.response_filter is None:
            lines = streamed = PageRecords(self._pages(), self.records_path)  # streamed, page by page
            pages = 0
        else:
            if self.paginator is not None:
                result: Any = list(self._pages())
                pages = len(result)
            else:
                result = self._checked(self._call(method))
                pages = 1
            fetched_at = fetched_now()
            if self.response_filter is not None:
                filtered = self.response_filter(result)
                lines = [
                    stamped(r, fetched_at) for r in (filtered if isinstance(filtered, list) else [filtered])
                ]
            else:
                lines = PageRecords([result], self.records_path)
        written_keys = self._written_keys
        if written_keys is not None:
            lines = written_keys.fresh(lines)
        mode = self.output_file_mode
        if fmt == "csv":
            records = write_csv(path, [*lines], mode=mode)
        else:
            records = write_jsonl(path, lines, mode=mode)
        if written_keys is not None and self.written_keys_asset is not None:
            remember_written_keys(context, self.written_keys_asset, written_keys)
            self.log.info(
                "Remembered %d keys written; %d keys of other runs in the lookback were not written again.",
                len(written_keys.written),
                written_keys.skipped_earlier,
            )
        if streamed is not None:
            pages = streamed.pages  # all read by now
        summary = {"path": str(path), "records": records, "pages": pages}
        self.log.info("Wrote %d records from %d pages to %s (%s).", records, pages, path, fmt)
        self._announce(context, path, {"records": records, "pages": pages})
        return summary


class BankingApiBalanceOperator(BankingApiBaseOperator):
    """Fetches the balances of one or many accounts at once, to XCom or to a JSON Lines / CSV file.

    Every account is tried. The successes are delivered first (written to ``output_path``, or pushed to
    XCom under the key ``balances``); then, if any account failed, the task fails with an error that
    lists what was delivered and where, and each failed account with its error type and the bank's
    reason. Nothing is lost, and the error says which accounts to rerun.

    :param account_ids: the accounts (templated): a list, or one string of ids separated by commas or
        spaces. Works with ``.expand(account_ids=...)``.
    :param account_id: one account (templated), taken whole; the natural name for
        ``.expand(account_id=[...])``.
    :param bankapi_conn_id: the ``bankapi`` connection.
    :param max_workers: how many balance calls at once (1 to 16); they all share one token.
    :param output_path: an object-storage URL (templated), e.g. ``file:///data/balances-{{ ds }}.csv``;
        the task then returns ``{"path", "records", "format"}`` and announces an asset event.
    :param output_format: ``"jsonl"`` or ``"csv"``; default from the path's suffix (JSON Lines unless
        ``.csv``).
    :param max_response_bytes: the largest answer of one call, in bytes, on the wire and once inflated, in
        place of the connection's ``max_response_bytes`` (default 16 MiB): raise it for a legitimately
        large resource such as a long statement. A larger answer fails the task with
        ``ResponseTooLargeError`` while it is read.
    :param asset_alias: the name of the asset alias the written file is announced through (default
        ``bankapi__<dag_id>__<task_id>``; ``""`` announces nothing).
    :param output_file_mode: the mode of a file written to a local disk, default ``0o600`` (its folders
        ``0o700``); see :class:`~airflow_provider_bankapi.operators.base.BankingApiBaseOperator`.

    Without ``output_path`` the task returns ``{account_id: balance}``.
    """

    template_fields: Sequence[str] = ("account_ids", "account_id", "output_path", "output_format")
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        account_ids: Sequence[str | int] | str | None = None,
        account_id: str | int | None = None,
        bankapi_conn_id: str = BankingApiHook.default_conn_name,
        max_workers: int = DEFAULT_MAX_WORKERS,
        output_path: str | None = None,
        output_format: str | None = None,
        asset_alias: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            bankapi_conn_id=bankapi_conn_id, output_path=output_path, asset_alias=asset_alias, **kwargs
        )
        if account_ids is None and account_id is None:
            raise ValueError("Give account_ids (one or many) or account_id.")
        if (
            not isinstance(max_workers, int)
            or isinstance(max_workers, bool)
            or not 1 <= max_workers <= MAX_WORKERS
        ):
            raise ValueError(
                f"max_workers must be a whole number from 1 to {MAX_WORKERS}; got {max_workers!r}."
            )
        self.account_ids = account_ids
        self.account_id = account_id
        self.max_workers = max_workers
        self.output_format = output_format

    def lineage_endpoint(self) -> str:
        return BALANCE_ENDPOINT

    def accounts(self) -> list[str]:
        """The rendered account ids, in order, without duplicates."""
        from airflow_provider_bankapi.client.endpoints import checked_account_id  # the client, at run time

        given: list[tuple[str, Any]] = []
        if isinstance(self.account_ids, str):
            given.extend(
                ("account_ids", part) for part in _ACCOUNT_SEPARATORS.split(self.account_ids) if part
            )
        elif isinstance(self.account_ids, (int, float)):
            given.append(("account_ids", self.account_ids))
        elif self.account_ids is not None:
            given.extend(("account_ids", item) for item in self.account_ids)
        if self.account_id is not None:
            # Taken whole, never split: a mapped instance's id is also its file name and its label.
            given.append(("account_id", self.account_id))
        # Every id checked before any call: a crafted one fails the task, naming it, before anything is
        # fetched or written.
        texts = [(field, str(item).strip()) for field, item in given]
        ids = list(dict.fromkeys(checked_account_id(text, field=field) for field, text in texts if text))
        if not ids:
            raise ConfigurationError(
                "No account id to fetch (account_ids rendered empty).", field="account_ids"
            )
        return ids

    def execute(self, context: Context) -> Any:
        accounts = self.accounts()
        workers = min(self.max_workers, len(accounts))
        if self.output_path is not None:
            result, batch = self._write(context, accounts, workers)
            delivered_to = str(result["path"])
        else:
            batch = self.hook.get_balances(accounts, max_workers=workers)
            result, delivered_to = batch.succeeded, "XCom key 'balances' of this task"
            if batch.failed:
                # The return value is lost when the task fails: push the successes where they survive.
                context["ti"].xcom_push(key="balances", value=batch.succeeded)
        self.log.info("Balances: %s.", batch.summary())
        if batch.failed:
            raise self._partial_failure(accounts, batch, delivered_to)
        return result

    def _write(
        self, context: Context, accounts: list[str], workers: int
    ) -> tuple[dict[str, Any], BatchResult]:
        """JSON Lines: each balance written as it arrives, only the ids delivered and the failures kept.
        CSV gathers its rows first: its header names every field of every balance, known once all arrived.
        """
        from airflow_provider_bankapi.client.batch import BatchResult  # the client's imports, at run time

        path = output_location(str(self.output_path))
        fmt = output_format(path, self.output_format)
        rows = BalanceRows(self.hook.iter_balances(accounts, max_workers=workers))
        as_csv = fmt == "csv"
        mode = self.output_file_mode
        if as_csv:
            records = write_csv(path, [*rows], first_column="account_id", mode=mode)
        else:
            records = write_jsonl(path, rows, mode=mode)
        self.log.info("Wrote %d balances to %s (%s).", records, path, fmt)
        if not rows.failed:  # an asset event says "this file is complete"; a partial one is not
            self._announce(context, path, {"records": records, "format": fmt})
        summary = {"path": str(path), "records": records, "format": fmt}
        return summary, BatchResult(rows.delivered, rows.failed)

    def _partial_failure(
        self, accounts: list[str], batch: BatchResult, delivered_to: str
    ) -> BalancesPartlyFailedError:
        lines = [
            f"{len(batch.failed)} of {len(accounts)} balances failed; the {len(batch.succeeded)} others were "
            f"delivered to {delivered_to}."
        ]
        hints: dict[str, None] = {}
        for account, error in batch.failed.items():
            lines.append(f"  account {account}: {_describe(error)}")
            if error.hint:
                hints[f"{type(error).__name__}: {error.hint}"] = None
        lines.extend(f"  hint, {hint}" for hint in hints)
        return BalancesPartlyFailedError(
            "\n".join(lines),
            succeeded=[*batch.succeeded],
            failed=dict(batch.failed),
            delivered_to=delivered_to,
        )


def _describe(error: BankingApiError) -> str:
    parts = [type(error).__name__]
    status = getattr(error, "status_code", None)
    if status is not None:
        parts.append(str(status))
    reason = getattr(error, "bank_reason", None)
    text = f"{' '.join(parts)}: {error.message}"
    if reason and reason.lower() not in error.message.lower():
        text += f" (the bank said: {reason})"
    return text

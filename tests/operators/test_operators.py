"""The operators in real DAG runs (dag.test() against the session's Airflow) and the sandbox bank."""

from __future__ import annotations

import csv
import json
import math
import socket
import threading
import uuid
from pathlib import Path

import pytest
from airflow_harness import run_dag
from bank_day import BankDay
from test_outputs import wait_for
from written import jsonl_records

from airflow_provider_bankapi.client.api import next_cursor_params
from airflow_provider_bankapi.errors import ConfigurationError, ResponseTooLargeError
from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from airflow_provider_bankapi.operators.bankapi import BankingApiBalanceOperator, BankingApiOperator
from airflow_provider_bankapi.operators.http_options import checked_headers
from bankapi_sandbox import data

pytestmark = pytest.mark.airflow

DAG_FILE = Path(__file__).parent / "dags" / "bankapi_operators.py"
ACCOUNTS = ["123", "456", "789"]


@pytest.fixture
def bank(bankapi_sandbox, airflow_connection):
    """The sandbox, as the connection ``bankapi_default`` for the whole test (DAG run and checks)."""
    airflow_connection("bankapi_default", bankapi_sandbox.connection)
    return bankapi_sandbox


def secrets_of(sandbox) -> list[str]:
    """client_secret, PFX password, lines of the private key, and the live token (from the host cache)."""
    key_lines = [line for line in sandbox.client_key.read_text().splitlines() if line and "-----" not in line]
    token = BankingApiHook(bankapi_conn_id="bankapi_default").get_token().access_token
    pfx_password = sandbox.connection_pfx["extra"]["client_pfx_password"]
    return [sandbox.connection["password"], pfx_password, token, *key_lines[:3]]


def assert_no_secret(sandbox, *texts: str) -> None:
    for secret in secrets_of(sandbox):
        for text in texts:
            assert secret not in text


def all_xcoms(result) -> str:
    return json.dumps({str(key): value for key, value in result.xcoms().items()}, default=str)


def asset_events(uri_prefix: str) -> dict[str, list[dict]]:
    """Asset events recorded in the metadata DB for URIs under a prefix: uri -> [event extra, ...]."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri.startswith(uri_prefix))
        ).all()
    events: dict[str, list[dict]] = {}
    for uri, extra in rows:
        events.setdefault(uri, []).append(extra)
    return events


def read_jsonl(path: Path) -> list[dict]:
    return jsonl_records(path.read_text())


# -- BankingApiOperator -------------------------------------------------------------------------------


def test_generic_calls_to_xcom_and_to_json_lines_with_pagination(bank, tmp_path):
    account, limit = "123", 7
    total = data.transaction_count(account)

    result = run_dag(
        DAG_FILE, "bankapi_generic_calls", conf={"out": tmp_path.as_uri(), "account": account, "limit": limit}
    )

    assert result.state == "success", result.task_states
    assert result.xcom("accounts") == data.accounts(bank.client_id)
    assert result.xcom("transaction_count") == {"pages": math.ceil(total / 10), "items": total}
    summary = result.xcom("transactions_file")
    (written,) = tmp_path.glob("transactions-*.jsonl")
    assert summary == {"path": written.as_uri(), "records": total, "pages": math.ceil(total / limit)}
    records = read_jsonl(written)
    assert [r["transaction_id"] for r in records] == [f"{account}-{i:05d}" for i in range(total)]
    # A page without an "items" list is one record.
    assert read_jsonl(tmp_path / "one.jsonl") == [data.balance("123")]
    assert result.xcom("balance_file")["records"] == 1
    events = asset_events(tmp_path.as_uri())
    assert events[written.as_uri()] == [{"records": total, "pages": math.ceil(total / limit)}]
    assert bank.counters()["tokens_issued"] == 1  # four tasks, one token
    assert_no_secret(bank, all_xcoms(result), written.read_text())


def test_a_failed_response_check_and_the_token_endpoint_fail_their_tasks(bank, capfd):
    result = run_dag(DAG_FILE, "bankapi_generic_refusals")

    assert result.task_states == {("check_fails", -1): "failed", ("token_endpoint", -1): "failed"}
    console = "".join(capfd.readouterr())
    assert "response_check returned False for GET /accounts" in console
    assert "The token endpoint is not a resource" in console
    assert bank.counters()["api_requests"] == 1  # the token endpoint was never called as a resource
    assert bank.counters()["tokens_issued"] == 1


def test_a_rerun_that_fails_on_page_2_leaves_the_previous_file_and_a_good_rerun_replaces_it(bank, tmp_path):
    conf = {"out": tmp_path.as_uri()}
    target = tmp_path / "transactions.jsonl"
    first = run_dag(DAG_FILE, "bankapi_transactions_rerun", conf=conf)
    assert first.state == "success", first.task_states
    complete = target.read_bytes()
    assert len(read_jsonl(target)) == data.transaction_count("123")

    bank.inject_fault("/accounts/123/transactions", "503", count=100, after=1)  # page 2 and its retries
    failed = run_dag(DAG_FILE, "bankapi_transactions_rerun", conf=conf)

    assert failed.task_states == {("transactions_file", -1): "failed"}
    assert bank.counters()["faults_served"]["503"] > 0
    assert target.read_bytes() == complete  # byte for byte
    assert [p.name for p in tmp_path.iterdir()] == ["transactions.jsonl"]  # no temporary file left
    bank.clear_faults()
    again = run_dag(DAG_FILE, "bankapi_transactions_rerun", conf=conf)
    assert again.state == "success", again.task_states
    assert read_jsonl(target) == jsonl_records(complete.decode())  # replaced, not appended to
    assert target.read_bytes() != complete  # a new fetched_at: this run's file


@pytest.mark.parametrize(
    ("endpoint", "refusal"),
    [
        pytest.param("/accounts/../../../outside/x", "outside the Base URL", id="above-the-base"),
        pytest.param("/auth/./token-v2", "token endpoint", id="token-endpoint-dot"),
        pytest.param("/accounts/../auth/token-v2", "token endpoint", id="token-endpoint-dot-dot"),
        pytest.param("/auth/token-v2#", "fragment", id="token-endpoint-fragment"),
        pytest.param("/auth/token-v2/.", "token endpoint", id="token-endpoint-trailing-dot"),
        pytest.param("/accounts/%2e%2e/auth/token-v2", "token endpoint", id="token-endpoint-encoded-dots"),
    ],
)
def test_an_endpoint_from_the_run_conf_that_leaves_the_base_url_fails_before_any_request(
    bank, capfd, endpoint, refusal
):
    result = run_dag(DAG_FILE, "bankapi_endpoint_from_conf", conf={"endpoint": endpoint})

    assert result.task_states == {("from_conf", -1): "failed"}
    console = "".join(capfd.readouterr())
    assert "ConfigurationError" in console
    assert refusal in console
    assert bank.counters()["tls_connections"] == 0  # no token fetched, nothing sent
    assert "access_token" not in all_xcoms(result)


def test_an_endpoint_from_the_run_conf_that_resolves_inside_the_base_url_is_called(bank):
    result = run_dag(
        DAG_FILE, "bankapi_endpoint_from_conf", conf={"endpoint": "/accounts/9/../123/./balance"}
    )

    assert result.task_states == {("from_conf", -1): "success"}
    assert result.xcom("from_conf") == data.balance("123")


def test_headers_reach_the_bank_and_a_csv_answer_is_returned_or_written_as_it_came(bank, tmp_path, capfd):
    result = run_dag(DAG_FILE, "bankapi_raw_answers", conf={"out": tmp_path.as_uri()})

    statement = data.statement_csv("123")
    assert result.task_states[("without_accept", -1)] == "failed"  # the default Accept is JSON: 406
    assert "406" in "".join(capfd.readouterr())
    assert result.xcom("statement_text") == statement
    assert result.xcom("statement_rows") == data.transaction_count("123")
    (written,) = tmp_path.glob("statement-*.csv")
    assert written.read_bytes() == statement.encode()  # byte for byte, CRLF line ends included
    assert result.xcom("statement_file") == {"path": written.as_uri(), "bytes": len(statement.encode())}
    assert asset_events(tmp_path.as_uri())[written.as_uri()] == [{"bytes": len(statement.encode())}]
    assert [p.name for p in tmp_path.iterdir()] == [written.name]  # no temporary file left
    assert bank.counters()["tokens_issued"] == 1


@pytest.mark.parametrize(
    "name", ["Authorization", "authorization", "HOST", "Cookie", "Proxy-Authorization", "content-length"]
)
def test_headers_the_provider_owns_are_refused_when_the_dag_is_parsed_without_their_value(name):
    with pytest.raises(ConfigurationError) as caught:
        BankingApiOperator(task_id="o", endpoint="/accounts", headers={name: "Bearer not-a-real-token"})

    assert caught.value.field == "headers"
    assert repr(name) in caught.value.message
    assert "not-a-real-token" not in f"{caught.value} {caught.value!r}"


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        pytest.param({"X-Trace": "one\r\nAuthorization: Bearer not-a-real-token"}, "X-Trace", id="crlf"),
        pytest.param({"X-Count": 3}, "X-Count", id="not-text"),
        pytest.param({"Bad Name:": "v"}, "Bad Name:", id="bad-name"),
        pytest.param("X-Trace: 1", None, id="not-a-mapping"),
    ],
)
def test_rendered_headers_are_checked_before_the_call_without_echoing_values(headers, named):
    with pytest.raises(ConfigurationError) as caught:
        checked_headers(headers)

    assert caught.value.field == "headers"
    if named:
        assert repr(named) in caught.value.message
    assert "not-a-real-token" not in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Authorization\x00", id="authorization-nul"),
        pytest.param("Host\x00", id="host-nul"),
        pytest.param("\x00Cookie", id="nul-first"),
        pytest.param("X-Trace\r\nAuthorization", id="crlf"),
        pytest.param("X-W\u00e4hrung", id="non-ascii"),
        pytest.param("X\u200bAuthorization", id="zero-width-space"),
        pytest.param("X Trace", id="inner-space"),
        pytest.param("(X-Trace)", id="separator"),
        pytest.param("", id="empty"),
    ],
)
def test_a_header_name_that_is_not_an_rfc9110_token_is_refused_naming_it(name):
    for check in (
        lambda: BankingApiOperator(
            task_id="o", endpoint="/accounts", headers={name: "Bearer not-a-real-token"}
        ),
        lambda: checked_headers({name: "Bearer not-a-real-token"}),
    ):
        with pytest.raises(ConfigurationError) as caught:
            check()

        assert caught.value.field == "headers"
        assert repr(name) in caught.value.message
        assert "RFC 9110" in caught.value.message
        assert "not-a-real-token" not in f"{caught.value} {caught.value!r}"


def test_a_header_value_with_a_nul_is_refused():
    with pytest.raises(ConfigurationError, match="'X-Trace'.*no CR, LF or NUL") as caught:
        checked_headers({"X-Trace": "one\x00two"})

    assert caught.value.field == "headers"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"response_type": "xml"}, "response_type", id="unknown-type"),
        pytest.param({"response_type": "bytes"}, "response_type", id="bytes-to-xcom"),
        pytest.param(
            {"response_type": "text", "pagination_function": next_cursor_params},
            "response_type",
            id="paged-text",
        ),
        pytest.param(
            {"headers": {"Accept": "text/csv"}, "pagination_function": next_cursor_params},
            "headers",
            id="paged-headers",
        ),
    ],
)
def test_response_type_arguments_are_checked_when_the_dag_is_parsed(kwargs, field):
    with pytest.raises(ConfigurationError) as caught:
        BankingApiOperator(task_id="o", endpoint="/accounts", **kwargs)

    assert caught.value.field == field


def test_bytes_may_go_to_a_file_or_through_a_filter_or_nowhere():
    for kwargs in ({"output_path": "file:///tmp/x.csv"}, {"response_filter": len}, {"do_xcom_push": False}):
        assert (
            BankingApiOperator(task_id="o", endpoint="/a", response_type="bytes", **kwargs).response_type
            == "bytes"
        )


# -- BankingApiBalanceOperator -------------------------------------------------------------------------


def test_balances_to_xcom_csv_json_lines_and_mapped_tasks_with_one_token(bank, tmp_path):
    result = run_dag(DAG_FILE, "bankapi_balances", conf={"out": tmp_path.as_uri(), "accounts": ACCOUNTS})

    assert result.state == "success", result.task_states
    expected = {account: data.balance(account) for account in ACCOUNTS}
    assert result.xcom("to_xcom") == expected
    for index, account in enumerate(ACCOUNTS):
        assert result.xcom("mapped", map_index=index) == {account: expected[account]}

    csv_path = tmp_path / "balances.csv"
    assert result.xcom("to_csv") == {"path": csv_path.as_uri(), "records": 3, "format": "csv"}
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["account_id"] for row in rows] == ACCOUNTS
    assert [row["available"] for row in rows] == [expected[a]["available"] for a in ACCOUNTS]  # exact text
    columns = ["account_id", "available", "current", "blocked", "currency", "as_of", "fetched_at"]
    assert list(rows[0]) == columns

    (jsonl_path,) = tmp_path.glob("balances-*.data")  # output_format wins over the suffix
    assert read_jsonl(jsonl_path) == [expected[a] for a in ACCOUNTS]
    events = asset_events(tmp_path.as_uri())
    assert events == {
        csv_path.as_uri(): [{"records": 3, "format": "csv"}],
        jsonl_path.as_uri(): [{"records": 3, "format": "jsonl"}],
    }
    counters = bank.counters()
    assert counters["tokens_issued"] == 1  # 6 task runs (3 mapped), one token
    assert counters["api_requests"] == 4 * 3
    assert_no_secret(bank, all_xcoms(result), csv_path.read_text(), jsonl_path.read_text())


def test_a_partial_failure_delivers_the_successes_then_fails_naming_each_failed_account(
    bank, tmp_path, capfd
):
    bank.inject_fault("/accounts/789/balance", "503", count=100)  # down for the whole run, retries included
    accounts = ["123", "bad.id", "456", "789"]  # the sandbox answers 404 for an id with a dot

    result = run_dag(
        DAG_FILE, "bankapi_balances_partly_failing", conf={"out": tmp_path.as_uri(), "accounts": accounts}
    )

    assert result.task_states == {("to_file", -1): "failed", ("to_xcom", -1): "failed"}
    assert read_jsonl(tmp_path / "partial.jsonl") == [data.balance("123"), data.balance("456")]
    assert result.xcom("to_xcom", key="balances") == {a: data.balance(a) for a in ("123", "456")}
    assert asset_events(tmp_path.as_uri()) == {}  # a partial file is not announced as the asset
    console = "".join(capfd.readouterr())
    assert "BalancesPartlyFailedError" in console
    assert (
        f"2 of 4 balances failed; the 2 others were delivered to {(tmp_path / 'partial.jsonl').as_uri()}"
        in (console)
    )
    assert "delivered to XCom key 'balances' of this task" in console
    assert "account bad.id: ApiError 404" in console
    assert "account 789: ServerError 503" in console
    assert_no_secret(bank, console, all_xcoms(result))


def test_a_credential_that_fails_for_every_account_fails_the_task_with_its_own_error_once(
    bank, tmp_path, capfd
):
    BankingApiHook(bankapi_conn_id="bankapi_default").get_token()  # cached on the host: the tasks start on it
    bank.core.deactivate(bank.client_id)
    bank.revoke_tokens()

    result = run_dag(
        DAG_FILE, "bankapi_balances_partly_failing", conf={"out": tmp_path.as_uri(), "accounts": ACCOUNTS}
    )

    assert result.task_states == {("to_file", -1): "failed", ("to_xcom", -1): "failed"}
    console = "".join(capfd.readouterr())
    assert "InvalidCredentialsError" in console
    assert "BalancesPartlyFailedError" not in console
    assert "others were delivered" not in console
    assert not (tmp_path / "partial.jsonl").exists()


@pytest.mark.bankapi_sandbox(latency=0.05)  # 40 accounts one at a time: two seconds of calls
def test_balances_to_json_lines_are_written_as_they_arrive_in_the_order_of_the_accounts(bank, tmp_path):
    accounts = [str(number) for number in range(40, 0, -1)]
    operator = BankingApiBalanceOperator(
        task_id="b",
        account_ids=accounts,
        max_workers=1,
        output_path=(tmp_path / "b.jsonl").as_uri(),
        asset_alias="",
    )
    task = threading.Thread(target=lambda: results.append(operator.execute({})))
    results: list[dict] = []
    task.start()
    try:
        # The first line is on disk (in the temporary file) while most calls are still to come.
        wait_for(
            lambda: any(p.stat().st_size for p in tmp_path.glob(".b.jsonl.*.tmp")) or not task.is_alive()
        )
        asked_by_then = bank.counters()["api_requests"]
    finally:
        task.join(timeout=120)
    assert asked_by_then < len(accounts) // 2
    assert results == [{"path": (tmp_path / "b.jsonl").as_uri(), "records": 40, "format": "jsonl"}]
    assert read_jsonl(tmp_path / "b.jsonl") == [data.balance(account) for account in accounts]


def test_task_processes_share_one_token_and_their_logs_hold_no_secret(bank, tmp_path, airflow_api_server):
    result = run_dag(DAG_FILE, "bankapi_in_processes", conf={"out": tmp_path.as_uri()}, use_executor=True)

    assert result.state == "success", result.task_states
    logs = {
        (task_id, index): result.task_log(task_id, map_index=index)
        for task_id, index in (("accounts", -1), ("balances", -1), ("mapped", 0), ("mapped", 1))
    }
    assert result.xcom("balances")["records"] == 2
    assert read_jsonl(tmp_path / "b.jsonl") == [data.balance("123"), data.balance("456")]
    # Four task processes, one token: the first fetched it, the others found it in the host cache.
    assert bank.counters()["tokens_issued"] == 1
    assert sum("Fetched a new access token" in log for log in logs.values()) == 1
    assert_no_secret(bank, *logs.values(), all_xcoms(result))


# -- construction and validation (no I/O) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"account_ids": ["1", 2, "1"]}, ["1", "2"], id="list-deduplicated"),
        pytest.param({"account_ids": "1, 2;3  4"}, ["1", "2", "3", "4"], id="separated-text"),
        pytest.param({"account_id": 7}, ["7"], id="one-account"),
        pytest.param({"account_ids": ("9",), "account_id": "8"}, ["9", "8"], id="both"),
    ],
)
def test_account_ids_in_every_shape(kwargs, expected):
    assert BankingApiBalanceOperator(task_id="b", **kwargs).accounts() == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="no-account"),
        pytest.param({"account_id": "1", "max_workers": 0}, id="no-workers"),
        pytest.param({"account_id": "1", "max_workers": 17}, id="too-many-workers"),
    ],
)
def test_balance_operator_arguments_are_checked_when_the_dag_is_parsed(kwargs):
    with pytest.raises(ValueError, match="account|max_workers"):
        BankingApiBalanceOperator(task_id="b", **kwargs)


def test_operators_touch_no_connection_until_they_run(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_BANKAPI_DEFAULT", raising=False)
    operator = BankingApiOperator(task_id="o", endpoint="/accounts", output_path="file:///tmp/x.jsonl")

    assert "hook" not in operator.__dict__
    assert [alias.name for alias in operator.outlets] == ["bankapi__o"]
    assert (
        BankingApiOperator(task_id="p", endpoint="/a", output_path="/x.jsonl", asset_alias="").outlets == []
    )


@pytest.mark.parametrize(
    "value",
    [pytest.param(10**10, id="past-1-GiB"), pytest.param(0, id="zero"), pytest.param("16 MiB", id="text")],
)
def test_max_response_bytes_is_checked_when_the_dag_is_parsed(value):
    with pytest.raises(ConfigurationError) as caught:
        BankingApiOperator(task_id="o", endpoint="/accounts", max_response_bytes=value)

    assert caught.value.field == "max_response_bytes"
    assert "a whole number from 1024 to 1073741824" in caught.value.message


def test_an_operators_max_response_bytes_replaces_the_connections(
    bankapi_sandbox, airflow_connection, tmp_path
):
    from loopback_https import TOKEN, Answer, LoopbackHttps

    statement = {"items": ["x" * 100] * 30_000}  # about 3 MiB of JSON: a long statement
    answers = {"POST": TOKEN, "GET": Answer(body=statement)}
    with LoopbackHttps(bankapi_sandbox, tmp_path, lambda seen: answers[seen.method]) as server:
        connection = {**bankapi_sandbox.connection, "host": server.base_url}
        connection.pop("port", None)
        connection["extra"] = {**connection["extra"], "cache_scope": "off", "max_response_bytes": 1024 * 1024}
        airflow_connection("bankapi_default", connection)
        larger = BankingApiOperator(task_id="o", endpoint="/statements", max_response_bytes=4 * 1024 * 1024)
        as_connection = BankingApiOperator(task_id="p", endpoint="/statements")

        assert larger.hook.get_json("/statements") == statement
        with pytest.raises(ResponseTooLargeError) as refused:
            as_connection.hook.get_json("/statements")

    assert refused.value.limit == 1024 * 1024


# -- a bank shaped like Open Finance Brasil: pagination styles, records, exact money, audit fields ---------


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_links_link_header_and_page_walks_write_every_record_once_with_one_request_per_page(bank, tmp_path):
    account, page_size = "123", 10
    total = data.transaction_count(account)
    pages = math.ceil(total / page_size)
    BankDay(bank).take_requests()

    result = run_dag(
        DAG_FILE,
        "bankapi_bank_data",
        conf={"out": tmp_path.as_uri(), "account": account, "page_size": page_size},
    )

    assert result.state == "success", result.task_states
    log = [r for r in BankDay(bank).take_requests() if not r["path"].endswith("/auth/token-v2")]
    per_path = {path: sum(r["path"] == path for r in log) for path in {r["path"] for r in log}}
    assert per_path == {
        f"/open-banking/accounts/{account}/transactions": 2 * pages,  # the links walk and the page walk
        f"/linked/accounts/{account}/transactions": pages,
        f"/open-banking/accounts/{account}/balances": 2,
    }
    ids = [r["interaction_id"] for r in log]
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert len(set(ids)) == len(ids)  # every request its own id
    expected = [f"{account}-{i:05d}" for i in range(total)]
    for name in ("links.jsonl", "link_header.jsonl"):
        records = read_jsonl(tmp_path / name)  # each with fetched_at in UTC
        assert [r["transactionId"] for r in records] == expected, name
    rows = read_csv(tmp_path / "page.csv")
    assert [r["transactionId"] for r in rows] == expected
    assert {"transactionAmount.amount", "transactionAmount.currency", "fetched_at"} <= set(rows[0])
    assert all(r["transactionAmount.currency"] == "BRL" for r in rows)
    assert all(len(r["transactionAmount.amount"].split(".")[1]) == 4 for r in rows)  # 4 decimals kept
    assert result.xcom("links_walk") == {
        "path": (tmp_path / "links.jsonl").as_uri(),
        "records": total,
        "pages": pages,
    }


def test_exact_money_reaches_the_file_and_xcom_digit_for_digit(bank, tmp_path):
    result = run_dag(
        DAG_FILE, "bankapi_bank_data", conf={"out": tmp_path.as_uri(), "account": "123", "page_size": 50}
    )

    assert result.state == "success", result.task_states
    line = (tmp_path / "balances.jsonl").read_text()
    assert '"availableAmount":{"amount":1000.0400,"currency":"BRL"}' in line
    assert '"automaticallyInvestedAmount":{"amount":12345678901234567.89,"currency":"BRL"}' in line
    # As stored in the metadata DB: the digits as text (Airflow's own Decimal serializer goes through float).
    stored = result.xcom("balances")["data"]
    assert stored["availableAmount"]["amount"]["__data__"] == "1000.0400"
    assert stored["automaticallyInvestedAmount"]["amount"]["__data__"] == "12345678901234567.89"
    # As a downstream task reads it back:
    assert result.xcom("amounts_downstream") == {
        "types": ["BankDecimal"],
        "available": "1000.0400",
        "invested": "12345678901234567.89",
    }


def test_a_next_link_to_another_host_fails_before_any_connection_to_it_and_writes_nothing(
    bank, tmp_path, capfd
):
    foreign = socket.socket()
    foreign.bind(("127.0.0.1", 0))
    foreign.listen(8)  # the kernel completes any TCP handshake to it: each one would wait in the backlog
    foreign.setblocking(False)
    host, port = foreign.getsockname()
    BankDay(bank).take_requests()
    try:
        result = run_dag(
            DAG_FILE,
            "bankapi_foreign_next_link",
            conf={"out": tmp_path.as_uri(), "foreign": f"https://{host}:{port}"},
        )
        with pytest.raises(BlockingIOError):
            foreign.accept()  # no connection ever came
    finally:
        foreign.close()

    assert result.task_states == {("foreign_link", -1): "failed"}
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file left
    console = "".join(capfd.readouterr())
    assert f"A page's next link points to {host}:{port}, outside the connection's Base URL" in console
    (page,) = [r for r in BankDay(bank).take_requests() if r["path"].endswith("/transactions")]
    assert f"(interaction id {page['interaction_id']})" in console  # the id of the answer with the link


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"pagination": "offset"}, ConfigurationError, id="unknown-style"),
        pytest.param(
            {"pagination": "links", "pagination_function": next_cursor_params}, ValueError, id="both"
        ),
    ],
)
def test_a_pagination_mistake_fails_when_the_dag_is_parsed(kwargs, error):
    with pytest.raises(error):
        BankingApiOperator(task_id="t", endpoint="/accounts/1/transactions", **kwargs)

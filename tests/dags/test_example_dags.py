"""Every example DAG of ``dags_examples/`` run for real: ``dag.test()`` against the sandbox bank.

Each test runs the example file itself (copied alone into the session's DAGs folder), with the
connection ``bankapi_default`` pointing at a fresh sandbox and the Variable ``bankapi_output_base`` at a
temporary directory, then checks what a user would check: task states, the rows of the written
files, XComs, asset events, and the bank's own counters (how many tokens it issued, how many calls
it answered).
"""

from __future__ import annotations

import datetime
import json
import math
import re
import shutil
import stat
from pathlib import Path

import pytest
from airflow_harness import AIRFLOW_HOME, LOGS_FOLDER, Triggerer, run_dag
from bank_day import BankDay
from written import jsonl_records

from bankapi_sandbox import data

pytestmark = pytest.mark.airflow

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"
TRIGGER = "airflow_provider_bankapi.triggers.bankapi.BankingApiTrigger"


@pytest.fixture
def bank(bankapi_sandbox, airflow_connection):
    """The sandbox, as the connection ``bankapi_default`` of the examples."""
    airflow_connection("bankapi_default", bankapi_sandbox.connection_json)
    return bankapi_sandbox


@pytest.fixture
def output(tmp_path):
    """Where the examples write (``bankapi_output_base``), and the environment that says so."""
    base = tmp_path / "output"
    cache = tmp_path / "cache"  # the host token store of this test's "worker machine"
    return base, {"AIRFLOW_VAR_BANKAPI_OUTPUT_BASE": f"file://{base}", "XDG_CACHE_HOME": str(cache)}


def rows(path: Path) -> list[dict]:
    return jsonl_records(path.read_text())


def local(url: str) -> Path:
    assert url.startswith("file:///"), url
    return Path(url.removeprefix("file://"))


def asset_events(dag_id: str, run_id: str) -> dict[str, dict]:
    """The asset events a run emitted: asset URI -> the event's extra."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
        ).all()
        return {event.asset.uri: dict(event.extra) for event in events}


def secrets_of(bank, cache: Path) -> list[str]:
    """client_secret, the PFX password, lines of the private key and every token the run cached."""
    key_lines = [line for line in bank.client_key.read_text().splitlines() if line and "-----" not in line]
    tokens = [json.loads(path.read_text())["access_token"] for path in cache.rglob("*.json")]
    assert tokens, "the run cached no token: the scan would prove nothing"
    values = [
        bank.connection["password"],
        bank.connection_pfx["extra"]["client_pfx_password"],
        *key_lines,
        *tokens,
    ]
    assert all(len(value) >= 16 for value in values)  # long enough that a hit is never a coincidence
    return values


# -- bankapi_hourly_balances ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "accounts"),
    [
        pytest.param(None, ["123", "456", "789"], id="default-accounts"),
        pytest.param({"account_ids": ["2002", "3003"]}, ["2002", "3003"], id="accounts-from-conf"),
    ],
)
def test_hourly_balances_writes_one_line_per_account_and_announces_the_file(bank, output, conf, accounts):
    base, env = output

    result = run_dag(EXAMPLES / "bankapi_hourly_balances.py", env=env, conf=conf)

    assert result.task_states == {("fetch_balances", -1): "success"}
    written = result.xcom("fetch_balances")
    path = local(written["path"])
    assert path.parent == base / "balances"
    assert written == {"path": f"file://{path}", "records": len(accounts), "format": "jsonl"}
    assert rows(path) == [data.balance(account) for account in accounts]  # the bank's figures, in order
    assert asset_events(result.dag_id, result.run_id) == {
        f"file://{path}": {"records": len(accounts), "format": "jsonl"}
    }
    counters = bank.counters()
    assert (counters["tokens_issued"], counters["api_requests"]) == (1, len(accounts))


def test_hourly_balances_default_to_a_private_folder_under_airflow_home(bank, output):
    _, env = output
    del env["AIRFLOW_VAR_BANKAPI_OUTPUT_BASE"]  # no Variable: the example's own default

    result = run_dag(EXAMPLES / "bankapi_hourly_balances.py", env=env)

    assert result.task_states == {("fetch_balances", -1): "success"}
    path = local(result.xcom("fetch_balances")["path"])
    base = AIRFLOW_HOME / "bankapi-output"
    assert path.parent == base / "balances"  # not the shared temp directory's fixed /tmp/bankapi
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert {stat.S_IMODE(folder.stat().st_mode) for folder in (path.parent, base)} == {0o700}
    shutil.rmtree(base)


# -- bankapi_balances_mapped ----------------------------------------------------------------------


def test_mapped_balances_one_process_per_account_and_one_token_for_all(bank, output, airflow_api_server):
    base, env = output
    accounts = ["123", "456", "789", "1001"]  # the DAG's default Param

    # LocalExecutor: every task instance in a process of its own, as on a real worker.
    result = run_dag(EXAMPLES / "bankapi_balances_mapped.py", env=env, use_executor=True)

    assert result.state == "success", result.task_states
    assert result.task_states == {
        ("account_list", -1): "success",
        **{("fetch_balance", index): "success" for index in range(len(accounts))},
        ("summary", -1): "success",
    }
    folders = {local(result.xcom("fetch_balance", map_index=i)["path"]).parent for i in range(len(accounts))}
    (folder,) = folders
    assert folder.parent == base / "balances-by-account"
    for account in accounts:
        assert rows(folder / f"{account}.jsonl") == [data.balance(account)]
    assert result.xcom("summary") == {
        "files": sorted(f"file://{folder / f'{account}.jsonl'}" for account in accounts),
        "balances": len(accounts),
    }
    assert set(asset_events(result.dag_id, result.run_id)) == {
        f"file://{folder / f'{account}.jsonl'}" for account in accounts
    }
    assert rendered_map_indexes(result) == accounts  # the UI labels each instance with its account
    counters = bank.counters()
    assert counters["tokens_issued"] == 1  # four task processes, one token (the host token store)
    assert counters["api_requests"] == len(accounts)
    forbidden = secrets_of(bank, Path(env["XDG_CACHE_HOME"]))
    for index in range(len(accounts)):
        log = result.task_log("fetch_balance", map_index=index)
        assert "Wrote 1 balances" in log  # the log is the task's own, not an empty file
        for secret in forbidden:
            assert secret not in log, f"fetch_balance[{index}] log leaks {secret[:6]}..."


CRAFTED_IDS = [
    "123/../456",  # fetched account 456 and reported it as this id
    "../../../escaped",
    "..%2F..%2F..%2Fescaped",
    "..\\..\\escaped",  # a separator in a URL, a file name character on disk
    "%2e%2e",
    "1\nFORGED - Marking task as SUCCESS",
]


def test_mapped_balances_with_crafted_ids_from_the_trigger_form_write_nothing_outside_the_output_folder(
    bank, output, tmp_path, capfd
):
    base, env = output
    # The example as it is but for its retries (a refused id fails every try alike; four minutes of waits).
    example = (EXAMPLES / "bankapi_balances_mapped.py").read_text()
    assert '"retries": 2' in example
    copy = tmp_path / "bankapi_balances_mapped.py"
    copy.write_text(example.replace('"retries": 2', '"retries": 0'))
    around = set(tmp_path.parent.iterdir())
    BankDay(bank).take_requests()

    result = run_dag(copy, env=env, conf={"account_ids": ["123", *CRAFTED_IDS]})

    assert result.task_states == {
        ("account_list", -1): "success",
        ("fetch_balance", 0): "success",
        **{("fetch_balance", index): "failed" for index in range(1, len(CRAFTED_IDS) + 1)},
        ("summary", -1): "upstream_failed",
    }
    written = [path for path in tmp_path.rglob("*") if path.is_file() and "cache" not in path.parts]
    folder = local(result.xcom("fetch_balance", map_index=0)["path"]).parent
    assert written == [copy, folder / "123.jsonl"] or written == [folder / "123.jsonl", copy]
    assert folder.parent == base / "balances-by-account"
    assert set(tmp_path.parent.iterdir()) == around  # nothing beside this test's folder either
    requests = BankDay(bank).take_requests()
    balance_calls = [entry["account"] for entry in requests if entry["path"].endswith("/balance")]
    assert balance_calls == ["123"]  # account 456 never asked for
    console = "".join(capfd.readouterr())
    assert console.count("ConfigurationError") >= len(CRAFTED_IDS)
    assert "The account id '1\\nFORGED - Marking task as SUCCESS' holds control characters" in console
    assert not [line for line in console.splitlines() if line.startswith("FORGED")]  # no forged log line


def rendered_map_indexes(result) -> list[str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(
                select(TaskInstance.rendered_map_index)
                .where(TaskInstance.run_id == result.run_id, TaskInstance.task_id == "fetch_balance")
                .order_by(TaskInstance.map_index)
            )
        )


# -- bankapi_wait_for_funds -------------------------------------------------------------------------


def test_wait_for_funds_defers_to_the_trigger_resumes_and_pays(bankapi_sandbox, airflow_connection, output):
    bank = bankapi_sandbox
    _, env = output
    # No transport retry, so that one 503 makes the worker's first look "not yet" (a transient error):
    # the sensor must then hand the wait to the trigger, whose poll finds the funds.
    extra = {**bank.connection["extra"], "max_retries": 0}
    airflow_connection("bankapi_default", {**bank.connection, "extra": extra})
    bank.inject_fault("/accounts/123/balance", "503", count=1)
    env = {**env, "BANKAPI_FUNDS_POKE_INTERVAL": "0.5"}  # read when the DAG file is parsed
    available = data.balance("123")["available"]

    result = run_dag(EXAMPLES / "bankapi_wait_for_funds.py", env=env)

    assert result.task_states == {("wait_for_funds", -1): "success", ("payout", -1): "success"}
    ((classpath, stored),) = result.triggers()  # it deferred, once
    assert classpath == TRIGGER
    kwargs = json.loads(stored)
    assert kwargs["bankapi_conn_id"] == "bankapi_default"
    assert kwargs["endpoint"] == "/accounts/123/balance"
    assert kwargs["poke_interval"] == 0.5
    for secret in secrets_of(bank, Path(env["XDG_CACHE_HOME"])):
        assert secret not in stored
    # It resumed with what the trigger saw, and the payout got it as the bank's exact text. (Read through
    # the payout: the harness's XCom reader turns a numeric string back into a float.)
    assert result.xcom("payout") == {
        "from_account": "123",
        "amount": "1500.00",
        "beneficiary": "ACME Ltda",
        "available_when_checked": available,
    }
    counters = bank.counters()
    assert counters["faults_served"] == {"503": 1}  # the worker's look
    assert counters["api_requests"] == 2  # ...then one poll in the trigger
    assert counters["tokens_issued"] == 1  # the trigger reused the worker's token


def test_wait_for_funds_in_a_real_triggerer_process(
    bankapi_sandbox, airflow_connection, output, airflow_api_server
):
    # As deployed: each task in a LocalExecutor process of its own, the trigger in `airflow triggerer`'s
    # trigger-runner subprocess, where the client is rebuilt from the connection id through the Task SDK.
    bank = bankapi_sandbox
    _, env = output
    extra = {**bank.connection["extra"], "max_retries": 0}
    airflow_connection("bankapi_default", {**bank.connection, "extra": extra})
    bank.inject_fault("/accounts/123/balance", "503", count=1)  # the worker's look: "not yet"
    env = {**env, "BANKAPI_FUNDS_POKE_INTERVAL": "0.5"}

    with Triggerer(env=env) as triggerer:  # same XDG_CACHE_HOME: a worker and a triggerer on one machine
        result = run_dag(EXAMPLES / "bankapi_wait_for_funds.py", env=env, use_executor=True)
        triggerer_output = triggerer.log_tail(1_000_000)

    assert result.task_states == {("wait_for_funds", -1): "success", ("payout", -1): "success"}
    # The trigger ran in the triggerer: it wrote its own log file next to the task's...
    (trigger_log,) = (LOGS_FOLDER / f"dag_id={result.dag_id}" / f"run_id={result.run_id}").glob(
        "task_id=wait_for_funds/attempt=1.log.trigger.*.log"
    )
    assert "Poll 1 of /accounts/123/balance: available >= 1500.00 holds." in trigger_log.read_text()
    # ...and the task resumed with what it saw.
    assert "condition met after 1 polls in the triggerer" in result.task_log("wait_for_funds")
    assert result.xcom("payout")["available_when_checked"] == data.balance("123")["available"]
    counters = bank.counters()
    assert counters["faults_served"] == {"503": 1}
    assert counters["api_requests"] == 2  # the worker's look, then one poll in the triggerer
    assert counters["tokens_issued"] == 1  # the triggerer found the worker's token in the host store
    logs = [
        trigger_log.read_text(),
        triggerer_output,
        *(result.task_log(t) for t in ("wait_for_funds", "payout")),
    ]
    for secret in secrets_of(bank, Path(env["XDG_CACHE_HOME"])):
        assert not any(secret in log for log in logs)


# -- bankapi_certificate_check -----------------------------------------------------------------------


def certificate_connection(bank, name: str | None, *, days_left: float) -> dict:
    """The sandbox connection with a certificate valid ``days_left`` more days (negative: expired)."""
    if name is None:
        return bank.connection  # the sandbox's own certificate (a year)
    now = datetime.datetime.now(datetime.timezone.utc)
    files = bank.issue_client_certificate(
        name,
        not_before=now - datetime.timedelta(days=60),
        not_after=now + datetime.timedelta(days=days_left),
    )
    extra = {
        **bank.connection["extra"],
        "client_cert": str(files.certificate),
        "client_private_key": str(files.private_key),
    }
    return {**bank.connection, "extra": extra}


@pytest.mark.parametrize(
    ("name", "days_left", "status"),
    [
        pytest.param(None, 365, "ok", id="fresh"),
        pytest.param("expiring", 10.5, "expiring", id="expires-in-10-days"),
        pytest.param("almost", 31.5, "ok", id="31-days-left-is-no-warning"),
    ],
)
def test_certificate_check_passes_and_warns_before_expiry(
    bank, airflow_connection, output, capfd, caplog, name, days_left, status
):
    _, env = output
    airflow_connection("bankapi_default", certificate_connection(bank, name, days_left=days_left))

    result = run_dag(EXAMPLES / "bankapi_certificate_check.py", env=env)

    assert result.task_states == {("check_client_certificate", -1): "success"}
    checked = result.xcom("check_client_certificate")
    assert checked["status"] == status
    assert checked["days_left"] == (math.floor(days_left) if name else 364)
    console = "".join(capfd.readouterr()) + caplog.text  # task logs go to the console or to logging
    warned = "expires in 10 days" in console and "unbind the old certificate" in console
    assert warned is (status == "expiring")
    counters = bank.counters()
    assert (counters["tls_connections"], counters["api_requests"]) == (0, 0)  # no call to the bank


def test_certificate_check_fails_once_expired_with_the_rotation_steps(
    bank, airflow_connection, output, capfd, caplog
):
    _, env = output
    airflow_connection("bankapi_default", certificate_connection(bank, "expired", days_left=-2))

    result = run_dag(EXAMPLES / "bankapi_certificate_check.py", env=env)

    assert result.state == "failed"
    assert result.task_states == {("check_client_certificate", -1): "failed"}
    console = "".join(capfd.readouterr()) + caplog.text  # task logs go to the console or to logging
    assert "The client certificate of connection 'bankapi_default' can no longer be used" in console
    assert "expired on" in console
    for step in (
        "two active certificates per credential",
        "bind it to the credential in the bank's back office (CORE)",
        "switch the Airflow connection 'bankapi_default'",
        "unbind the old certificate in CORE",
    ):
        assert step in console
    assert bank.connection["password"] not in console


# -- bankapi_transactions_paginated ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "account", "page_size"),
    [
        pytest.param(None, "123", 50, id="defaults"),
        pytest.param({"account_id": "456", "page_size": 10}, "456", 10, id="conf"),
    ],
)
def test_transactions_paginated_streams_every_page_to_json_lines(bank, output, conf, account, page_size):
    base, env = output
    total = data.transaction_count(account)
    pages = math.ceil(total / page_size)
    assert pages >= 2  # more than one page, or pagination is not tested

    result = run_dag(EXAMPLES / "bankapi_transactions_paginated.py", env=env, conf=conf)

    assert result.task_states == {("export_transactions", -1): "success"}
    summary = result.xcom("export_transactions")
    path = local(summary["path"])
    assert path.parent == base / "transactions" / account
    assert summary == {"path": f"file://{path}", "records": total, "pages": pages}
    written = rows(path)
    expected = [f"{account}-{i:05d}" for i in range(total)]
    assert [row["transactionId"] for row in written] == expected  # all, newest first, no page read twice
    amount = re.compile(r'"transactionAmount":\{"amount":\d+\.\d{4},"currency":"BRL"\}')
    assert all(amount.search(line) for line in path.read_text().splitlines())  # the bank's 4 decimals
    counters = bank.counters()
    assert (counters["tokens_issued"], counters["api_requests"]) == (1, pages)  # one request per page


def test_payout_on_funds_parses_its_watcher_and_a_manual_run_pays_nothing_seen(bank):
    # The watcher itself runs in a triggerer: tests/e2e/test_retries_and_events.py starts the DAG with it.
    import runpy

    (watcher,) = runpy.run_path(str(EXAMPLES / "bankapi_payout_on_funds.py"))["funds"].watchers
    assert watcher.trigger.serialize()[1]["endpoint"] == "/accounts/123/balance"

    result = run_dag(EXAMPLES / "bankapi_payout_on_funds.py")

    assert result.state == "success"
    assert result.xcom("payout") == {"from_account": "123", "amount": "1500.00", "available_when_seen": None}

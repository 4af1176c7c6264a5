"""BankingApiTrigger.run() driven in an asyncio loop against the sandbox bank (real mTLS, real tokens).

The poll timestamps are taken inside the worker thread that makes each call, so a gap measured between
the end of one poll and the start of the next is a lower bound of what the bank saw. The assertions
are lower bounds (never poll faster than X), not durations: they hold on a slow machine too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
import time

import airflow_harness
import pytest
import structlog.testing

from airflow_provider_bankapi.client.fields import limit_of
from airflow_provider_bankapi.errors import ResponseTooLargeError
from airflow_provider_bankapi.hooks.bankapi import BankingApiHook
from airflow_provider_bankapi.triggers.bankapi import BankingApiTrigger, error_from_payload
from airflow_provider_bankapi.triggers.polling import Outcome

# asyncio may run a timer up to the clock's resolution early; 1 ms is far above it on Linux.
CLOCK_SLACK = 0.001
RICH = {"field": "available", "comparison": ">=", "value": "0.01"}  # every sandbox balance meets it
NEVER = {"field": "available", "comparison": ">=", "value": "1000000000000"}


class RecordingTrigger(BankingApiTrigger):
    """The trigger as it is, with the start and end of each poll written down."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.polls: list[tuple[float, float]] = []

    def _poll(self, client, check):
        started = time.monotonic()
        try:
            return super()._poll(client, check)
        finally:
            self.polls.append((started, time.monotonic()))

    def gaps(self) -> list[float]:
        """Seconds from the end of each poll to the start of the next."""
        return [nxt[0] - prev[1] for prev, nxt in zip(self.polls, self.polls[1:], strict=False)]


def first_event(trigger: BankingApiTrigger):
    async def run():
        return await anext(trigger.run(), None)

    return asyncio.run(run())


@pytest.fixture(autouse=True)
def _cheap_full_collections():
    """These tests watch the trigger's timing. Late in the full suite, one full garbage collection of
    the session's heap held every thread for about a second (seen in CI: a loop "blocked", a poll
    missed); frozen objects are not scanned, so a collection during the test stays short."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture
def connection(bankapi_sandbox, monkeypatch):
    """The sandbox's connection as ``bankapi_default``, transport retries off so that every fault reaches
    the trigger. Tests that change the dict call ``use_connection`` again."""
    conn = bankapi_sandbox.connection
    conn["extra"]["max_retries"] = 0
    use_connection(monkeypatch, conn)
    return conn


def use_connection(monkeypatch, conn):
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(conn))


def trigger_for(endpoint="/accounts/123/balance", condition=None, **kwargs):
    kwargs.setdefault("poke_interval", 0.2)
    kwargs.setdefault("backoff_max", 2.0)
    return RecordingTrigger(
        bankapi_conn_id="bankapi_default", endpoint=endpoint, condition=condition, **kwargs
    )


def secrets_of(sandbox) -> list[str]:
    """Every secret a leak would show: client_secret, key material, PFX password, the live token."""
    conn = sandbox.connection
    pfx = sandbox.connection_pfx
    key_lines = [line for line in sandbox.client_key.read_text().splitlines() if line and "-----" not in line]
    token = BankingApiHook(bankapi_conn_id="bankapi_default").get_token().access_token
    return [conn["password"], pfx["extra"]["client_pfx_password"], token, *key_lines[:3]]


def test_the_serialized_trigger_holds_the_connection_id_and_plain_values_only(bankapi_sandbox, connection):
    trigger = BankingApiTrigger(
        bankapi_conn_id="bankapi_default",
        endpoint="/accounts/123/balance",
        params={"as_of": "2026-01-31"},
        condition={"field": "available", "comparison": ">=", "value": "1500.00", "check": "operator.truth"},
        poke_interval=30,
        backoff_max=600,
        deadline=2_000_000_000.0,
        next_poll_at=1_999_999_000.0,
    )
    classpath, kwargs = trigger.serialize()
    text = json.dumps(kwargs)  # plain JSON: nothing to encrypt, nothing to pickle

    assert classpath == "airflow_provider_bankapi.triggers.bankapi.BankingApiTrigger"
    assert set(kwargs) == {
        "bankapi_conn_id",
        "endpoint",
        "params",
        "condition",
        "poke_interval",
        "backoff_max",
        "deadline",
        "next_poll_at",
    }
    for secret in secrets_of(bankapi_sandbox):
        assert secret not in text
    assert str(bankapi_sandbox.client_key) not in text
    assert "extra" not in text
    assert BankingApiTrigger(**kwargs).serialize() == (classpath, kwargs)  # the triggerer rebuilds it as is


def test_a_met_condition_ends_at_the_first_poll_with_the_observed_value(bankapi_sandbox, connection):
    from bankapi_sandbox import data

    event = first_event(trigger_for(condition=RICH))

    assert event.payload == {"status": "success", "value": data.balance("123")["available"], "polls": 1}
    counters = bankapi_sandbox.counters()
    assert (counters["tokens_issued"], counters["api_requests"]) == (1, 1)


def _wrong_secret(sandbox, conn):
    conn["password"] = "not-the-secret-0123456789"


def _unbound_certificate(sandbox, conn):
    files = sandbox.issue_client_certificate("stranger", bind=False)
    conn["extra"].update(client_cert=str(files.certificate), client_private_key=str(files.private_key))


def _not_on_the_allowlist(sandbox, conn):
    sandbox.core.set_allowed_ips(sandbox.client_id, ["192.0.2.10"])


def _missing_field(sandbox, conn):
    pass  # the condition below names a field the balance does not have


@pytest.mark.parametrize(
    ("breakage", "error_type", "reason"),
    [
        pytest.param(
            _wrong_secret, "InvalidCredentialsError", "Invalid Credentials", id="invalid-credentials"
        ),
        pytest.param(
            _unbound_certificate,
            "InvalidClientCertificateError",
            "Invalid Client Certificate",
            id="invalid-client-certificate",
        ),
        pytest.param(_not_on_the_allowlist, "ForbiddenError", "Forbidden", id="forbidden"),
        pytest.param(_missing_field, "ConfigurationError", None, id="no-such-field"),
    ],
)
def test_an_error_waiting_cannot_fix_ends_the_wait_at_once_without_polling_again(
    bankapi_sandbox, connection, monkeypatch, breakage, error_type, reason
):
    secret = connection["password"]
    breakage(bankapi_sandbox, connection)
    use_connection(monkeypatch, connection)
    condition = (
        {"field": "availble", "comparison": ">=", "value": "1"} if breakage is _missing_field else RICH
    )
    trigger = trigger_for(condition=condition, poke_interval=0.05)

    event = first_event(trigger)

    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == error_type
    assert event.payload["polls"] == 1
    assert len(trigger.polls) == 1
    assert event.payload["hint"]  # the bank's checklist travels with the event
    if reason is not None:
        assert event.payload["bank_reason"] == reason
    counters = bankapi_sandbox.counters()
    # One try at the token (and its one retry after a 401 on a protected call, by the client), no loop.
    assert counters["tokens_issued"] + sum(counters["token_refused"].values()) + counters["api_requests"] <= 2
    assert secret not in json.dumps(event.payload)
    assert connection["password"] not in json.dumps(event.payload)


@pytest.mark.parametrize(
    ("kind", "retry_after"),
    [pytest.param("503", None, id="503"), pytest.param("429", 1, id="429-retry-after")],
)
def test_transient_faults_back_off_and_no_gap_between_polls_undercuts_the_interval(
    bankapi_sandbox, connection, kind, retry_after
):
    bankapi_sandbox.inject_fault("/accounts/123/balance", kind, count=3, retry_after=retry_after)
    trigger = trigger_for(condition=RICH, poke_interval=0.2, backoff_max=1.0)

    event = first_event(trigger)

    assert event.payload["status"] == "success"
    assert event.payload["polls"] == 4
    assert bankapi_sandbox.counters()["faults_served"] == {kind: 3}
    gaps = trigger.gaps()
    assert len(gaps) == 3
    assert all(gap >= 0.2 - CLOCK_SLACK for gap in gaps)
    # Backing off: 2, then 4 intervals after the first two failures, then the 1 s cap; never a hot loop.
    assert gaps[0] >= 0.4 - CLOCK_SLACK
    assert gaps[1] >= 0.8 - CLOCK_SLACK
    assert gaps[2] >= 1.0 - CLOCK_SLACK
    if retry_after is not None:
        assert min(gaps) >= retry_after - CLOCK_SLACK  # the bank's Retry-After is honoured


def test_the_first_poll_keeps_the_interval_after_the_workers_own_look(bankapi_sandbox, connection):
    not_before = time.time() + 0.5
    trigger = trigger_for(condition=RICH, next_poll_at=not_before)

    assert first_event(trigger).payload["status"] == "success"
    assert time.time() >= not_before
    assert bankapi_sandbox.counters()["api_requests"] == 1


def test_an_unmet_condition_times_out_at_the_deadline_polling_at_the_interval(bankapi_sandbox, connection):
    deadline = time.time() + 1.5
    trigger = trigger_for(condition=NEVER, poke_interval=0.3, deadline=deadline)

    event = first_event(trigger)

    assert time.time() >= deadline - CLOCK_SLACK
    assert event.payload["status"] == "timeout"
    assert "available >= 1000000000000" in event.payload["message"]
    assert 2 <= event.payload["polls"] <= 1.5 / 0.3 + 1
    assert all(gap >= 0.3 - CLOCK_SLACK for gap in trigger.gaps())


def test_a_call_hanging_past_the_deadline_ends_with_a_timeout_event(bankapi_sandbox, connection, monkeypatch):
    # The deadline stops the waiting, not the thread: the read timeout ends that (and asyncio.run waits
    # for it at shutdown), so keep it short here.
    connection["extra"]["timeout"] = 3
    use_connection(monkeypatch, connection)
    BankingApiHook(bankapi_conn_id="bankapi_default").get_token()  # the hang is on the balance, not the token
    bankapi_sandbox.inject_fault("/accounts/123/balance", "hang", count=1)
    deadline = time.time() + 1.0

    event = first_event(trigger_for(condition=RICH, deadline=deadline))

    assert event.payload["status"] == "timeout"
    assert event.payload["polls"] == 1
    assert time.time() >= deadline - CLOCK_SLACK


def test_a_trickled_answer_ends_the_poll_at_its_deadline_and_the_next_poll_succeeds(
    bankapi_sandbox, connection, monkeypatch
):
    connection["extra"]["timeout"] = 2  # the whole answer within 2 s, connecting within 2 s
    use_connection(monkeypatch, connection)
    BankingApiHook(bankapi_conn_id="bankapi_default").get_token()  # the trickle is on the balance only
    bankapi_sandbox.inject_fault("/accounts/123/balance", "trickle", count=1)
    trigger = trigger_for(condition=RICH, deadline=time.time() + 20)

    event = first_event(trigger)

    assert (event.payload["status"], event.payload["polls"]) == ("success", 2)
    first_poll = trigger.polls[0][1] - trigger.polls[0][0]
    assert first_poll < 2 + 2 + 3  # one attempt: connect + answer timeouts, with a generous margin
    assert bankapi_sandbox.counters()["faults_served"] == {"trickle": 1}


def first_event_with_loop_ticks(trigger):
    """The trigger's first event, and the moments a 20 ms ticker ran on the same loop meanwhile."""
    ticks = []

    async def run():
        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.02)

        ticking = asyncio.create_task(ticker())
        try:
            return await anext(trigger.run())
        finally:
            ticks.append(time.monotonic())  # a stall up to the very end counts too
            ticking.cancel()

    return asyncio.run(run()), ticks


def test_the_event_loop_keeps_running_while_the_bank_is_slow(bankapi_sandbox, connection):
    bankapi_sandbox.set_latency(0.5)  # the token call and the balance call take 0.5 s each
    event, ticks = first_event_with_loop_ticks(trigger_for(condition=RICH))

    assert event.payload["status"] == "success"
    # A blocked loop would not tick at all during the ~1 s of calls; a free one ticks every 20 ms.
    assert len(ticks) >= 10
    assert max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) < 0.5


def test_the_event_loop_keeps_running_while_a_hostile_connection_is_loaded(
    bankapi_sandbox, connection, monkeypatch
):
    # The worst case of PEM splitting, one byte under the field's limit: BEGIN lines that never end.
    # Parsed with a GIL-holding quadratic scan, it froze the loop for seconds although it ran in a thread.
    size = limit_of("client_cert") - 1
    hostile = ("-----BEGIN CERTIFICATE-----\n" * (size // 28 + 1))[:size]
    use_connection(monkeypatch, {**connection, "extra": {**connection["extra"], "client_cert": hostile}})
    event, ticks = first_event_with_loop_ticks(trigger_for(condition=RICH))

    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == "ClientIdentityError"
    assert "no matching -----END" in event.payload["message"]
    assert event.payload["polls"] == 0
    # The loop's longest stall while the connection was read, loaded and refused.
    assert max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) < 0.5


def test_a_check_function_that_raises_ends_with_an_error_event(bankapi_sandbox, connection):
    trigger = trigger_for(condition={"check": "json.loads"})  # json.loads(dict) raises TypeError

    event = first_event(trigger)

    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == "TypeError"
    assert "check function" in event.payload["hint"]
    assert len(trigger.polls) == 1


def test_a_connection_the_triggerer_cannot_find_ends_with_an_error_event_before_any_poll(bankapi_sandbox):
    trigger = RecordingTrigger(bankapi_conn_id="no_such_connection", endpoint="/accounts", poke_interval=0.05)

    event = first_event(trigger)

    assert event.payload["status"] == "error"
    assert "no_such_connection" in event.payload["message"]
    assert event.payload["polls"] == 0
    assert trigger.polls == []
    assert bankapi_sandbox.counters()["tls_connections"] == 0


def test_the_trigger_in_another_process_uses_the_token_the_worker_cached_on_the_host(
    bankapi_sandbox, connection
):
    BankingApiHook(bankapi_conn_id="bankapi_default").get_token()  # a "worker" fetched and cached it
    assert bankapi_sandbox.counters()["tokens_issued"] == 1
    script = textwrap.dedent(
        """
        import asyncio, json
        from airflow_provider_bankapi.triggers.bankapi import BankingApiTrigger

        trigger = BankingApiTrigger(bankapi_conn_id="bankapi_default", endpoint="/accounts/123/balance",
                                    condition={"field": "available", "comparison": ">=", "value": "0.01"})

        async def first():
            return await anext(trigger.run())

        print(json.dumps(asyncio.run(first()).payload))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=airflow_harness.airflow_environment(connections={"bankapi_default": json.dumps(connection)}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "success"
    counters = bankapi_sandbox.counters()
    assert counters["tokens_issued"] == 1  # the triggerer process fetched none of its own
    assert counters["api_requests"] == 1


def test_a_gzip_bomb_on_a_poll_ends_the_wait_with_the_providers_error(bankapi_sandbox, connection):
    # About 1 MB of gzip that inflates to 1 GiB: refused at the connection's max_response_bytes while
    # it is read, in the triggerer that hosts every deferred task.
    bankapi_sandbox.inject_fault("/accounts/123/balance", "gzip-bomb")

    event = first_event(trigger_for()).payload

    assert event["status"] == "error"
    assert (event["error_type"], event["status_code"]) == ("ResponseTooLargeError", 200)
    assert "max_response_bytes" in event["hint"]
    assert isinstance(error_from_payload(event), ResponseTooLargeError)


# -- a hostile bank on loopback: echoes of the secret, bodies nested deep, endless Retry-After --------------


def loopback_bank(bankapi_sandbox, tmp_path, monkeypatch, connection, answer):
    """A bank on loopback whose ``answer(path under the Base URL, request body)`` decides, as the
    connection's Base URL (the same client certificate and CA as the sandbox's)."""
    from loopback_https import BASE_PATH, LoopbackHttps

    server = LoopbackHttps(
        bankapi_sandbox, tmp_path, lambda seen: answer(seen.path[len(BASE_PATH) :], seen.body)
    )
    use_connection(monkeypatch, {**connection, "host": server.base_url, "port": server.port})
    return server


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(lambda secret: f"error: invalid_request\nclient_secret: {secret}\n", id="yaml"),
        pytest.param(lambda secret: f"<error><secret>{secret}</secret></error>", id="xml"),
        pytest.param(
            lambda secret: json.dumps({"detail": json.dumps({"client_secret": secret})}), id="json-string"
        ),
        pytest.param(lambda secret: f"[{{'field': 'client_secret', 'value': '{secret}'}}]", id="repr-list"),
    ],
)
def test_a_token_endpoint_echoing_the_secret_ends_the_wait_with_an_event_that_does_not_hold_it(
    bankapi_sandbox, connection, tmp_path, monkeypatch, echo
):
    from loopback_https import Answer

    def answer(path, body):
        return Answer(400, body=echo(json.loads(body)["client_secret"]).encode())

    with loopback_bank(bankapi_sandbox, tmp_path, monkeypatch, connection, answer) as server:
        event = first_event(trigger_for())

    assert server.seen  # the secret went to the token endpoint, and came back
    assert event.payload["status"] == "error"
    assert event.payload["status_code"] == 400
    assert connection["password"] not in json.dumps(event.payload)
    assert "***" in event.payload["message"]


NESTED_500 = json.loads("[" * 500 + '"Invalid Credentials"' + "]" * 500)


@pytest.mark.parametrize(
    "unavailable",
    [
        pytest.param({"body": NESTED_500}, id="body-nested-500-deep"),
        pytest.param({"headers": {"Retry-After": "9" * 5000}}, id="retry-after-5000-digits"),
    ],
)
def test_a_transient_503_keeps_the_trigger_waiting_whatever_its_body_or_retry_after(
    bankapi_sandbox, connection, tmp_path, monkeypatch, unavailable
):
    from loopback_https import TOKEN, Answer

    balances = []

    def answer(path, body):
        if path == "/auth/token-v2":
            return TOKEN
        balances.append(path)
        return Answer(503, **unavailable) if len(balances) <= 2 else Answer(200, body={"available": "5.00"})

    with loopback_bank(bankapi_sandbox, tmp_path, monkeypatch, connection, answer):
        event = first_event(trigger_for(poke_interval=0.1, deadline=time.time() + 60))

    assert event.payload == {"status": "success", "value": {"available": "5.00"}, "polls": 3}


class HundredQuietPolls(BankingApiTrigger):
    """Real polls of the bank, the condition met at the 101st; a 503 injected before the ``fault_at``th."""

    def __init__(self, *, sandbox, fault_at=None, **kwargs):
        super().__init__(**kwargs)
        self.sandbox, self.fault_at, self.calls = sandbox, fault_at, 0

    def _poll(self, client, check):
        self.calls += 1
        if self.calls == self.fault_at:
            self.sandbox.inject_fault(self.endpoint, "503", count=1)
        outcome = super()._poll(client, check)
        return Outcome(met=self.calls > 100, observed=outcome.observed)


@pytest.mark.parametrize(
    ("fault_at", "expected"),
    [
        pytest.param(None, ["Waiting until", "holds"], id="quiet"),
        pytest.param(
            50, ["Waiting until", "ServerError", "answered again after 1", "holds"], id="a-transient-error"
        ),
    ],
)
def test_quiet_polls_log_below_info_and_only_the_start_a_change_and_the_end_reach_info(
    bankapi_sandbox, connection, fault_at, expected
):
    trigger = HundredQuietPolls(
        sandbox=bankapi_sandbox,
        fault_at=fault_at,
        bankapi_conn_id="bankapi_default",
        endpoint="/accounts/123/balance",
        condition=NEVER,
        poke_interval=0,
        backoff_max=0.05,
    )

    with structlog.testing.capture_logs() as logged:
        event = first_event(trigger)

    assert event.payload["status"] == "success"
    assert event.payload["polls"] == 101
    loud = [entry["event"] for entry in logged if entry["log_level"] not in ("debug", "notset")]
    own = [line for line in loud if "/accounts/123/balance" in line]
    assert len(own) == len(expected), loud
    assert all(word in line for word, line in zip(expected, own, strict=True)), own

"""Triggers of one connection share one client in a triggerer process: many triggers on one event loop
against the sandbox bank (real mTLS), and the registry's own bookkeeping."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import pytest

from airflow_provider_bankapi.client import api
from airflow_provider_bankapi.triggers.bankapi import BankingApiTrigger
from airflow_provider_bankapi.triggers.clients import CLIENTS, ClientRegistry
from airflow_provider_bankapi.triggers.polling import Outcome

NEVER = {"field": "available", "comparison": ">=", "value": "1000000000000"}
# The most Sessions (each with one kept-alive TLS connection) polls in flight at once can borrow: one per
# thread of the event loop's default executor.
LOOP_THREADS = min(32, (os.cpu_count() or 1) + 4)


class CountedPolls(BankingApiTrigger):
    """Real polls; the condition holds at the ``polls``th. ``on_poll(n)`` runs before the nth poll."""

    def __init__(self, *, polls=3, on_poll=None, **kwargs):
        kwargs.setdefault("bankapi_conn_id", "bankapi_default")
        kwargs.setdefault("endpoint", "/accounts/123/balance")
        kwargs.setdefault("condition", NEVER)
        kwargs.setdefault("poke_interval", 0.05)
        super().__init__(**kwargs)
        self.wanted, self.on_poll, self.calls, self.clients = polls, on_poll, 0, []

    def _poll(self, client, check):
        self.calls += 1
        if self.on_poll is not None:
            self.on_poll(self.calls)
        self.clients.append(client)
        outcome = super()._poll(client, check)
        return Outcome(met=self.calls >= self.wanted, observed=outcome.observed)


async def _all_events(triggers):
    return await asyncio.gather(*(anext(trigger.run()) for trigger in triggers))


@pytest.fixture
def connection(bankapi_sandbox, monkeypatch):
    conn = bankapi_sandbox.connection
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(conn))
    return conn


@pytest.fixture
def identity_loads(monkeypatch):
    loads = []
    real = api.load_identity

    def counted(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "load_identity", counted)
    return loads


def test_fifty_triggers_of_one_connection_share_one_client_one_identity_and_a_few_tls_connections(
    bankapi_sandbox, connection, identity_loads
):
    bankapi_sandbox.reset_counters()
    builds = CLIENTS.builds
    triggers = [CountedPolls() for _ in range(50)]

    events = asyncio.run(_all_events(triggers))

    assert [event.payload["status"] for event in events] == ["success"] * 50
    assert CLIENTS.builds - builds == 1
    assert len(identity_loads) == 1
    assert len({id(client) for trigger in triggers for client in trigger.clients}) == 1
    counters = bankapi_sandbox.counters()
    assert counters["api_requests"] == 150
    assert counters["tls_connections"] <= LOOP_THREADS  # was one per trigger: 50
    # The last trigger to end closed the client: no shared client left, no Session kept.
    assert CLIENTS.snapshot() == {}
    assert triggers[0].clients[0]._all_sessions == []


def test_a_connection_changed_in_airflow_gets_a_new_client_for_the_next_polls(
    bankapi_sandbox, connection, monkeypatch
):
    monkeypatch.setattr(CLIENTS, "recheck_interval", 0.0)  # read the connection again before every poll
    changed = {**connection, "extra": {**connection["extra"], "timeout": 20}}

    def change_at_the_third_poll(calls):
        if calls == 3:
            os.environ["AIRFLOW_CONN_BANKAPI_DEFAULT"] = json.dumps(changed)

    builds = CLIENTS.builds
    trigger = CountedPolls(polls=5, on_poll=change_at_the_third_poll)

    (event,) = asyncio.run(_all_events([trigger]))

    assert event.payload["status"] == "success"
    assert CLIENTS.builds - builds == 2
    first, *_, last = trigger.clients
    assert first is not last
    assert first.settings.transport.read_timeout != 20
    assert last.settings.transport.read_timeout == 20
    assert first._all_sessions == []
    assert last._all_sessions == []
    assert CLIENTS.snapshot() == {}


def test_a_wait_on_an_unreachable_bank_picks_up_the_corrected_connection_without_the_full_interval(
    bankapi_sandbox, connection, monkeypatch
):
    # A connection saved with the wrong port: nothing listens there, every poll is refused (transient).
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    wrong = {
        **connection,
        "host": connection["host"].replace(f":{connection['port']}/", f":{port}/"),
        "port": port,
        "extra": {**connection["extra"], "max_retries": 0},  # each poll one refused attempt
    }
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(wrong))
    # The full interval stays far beyond the test; only failing polls may read the connection again.
    monkeypatch.setattr(CLIENTS, "recheck_interval", 3600.0)
    monkeypatch.setattr(CLIENTS, "failing_recheck_interval", 0.0)

    def correct_it_after_two_refused_polls(calls):
        if calls == 3:  # this poll still goes out on the client it already has
            os.environ["AIRFLOW_CONN_BANKAPI_DEFAULT"] = json.dumps(connection)

    trigger = CountedPolls(polls=1, backoff_max=0.2, on_poll=correct_it_after_two_refused_polls)
    builds = CLIENTS.builds

    (event,) = asyncio.run(asyncio.wait_for(_all_events([trigger]), 20))

    assert event.payload["status"] == "success", event.payload
    assert trigger.calls == 4
    assert CLIENTS.builds - builds == 2
    assert trigger.clients[-1].settings.base_url == connection["host"]


def test_failing_polls_read_the_connection_again_after_the_shorter_interval_only():
    connections, now = Connections(), [0.0]
    registry = ClientRegistry(
        recheck_interval=300,
        failing_recheck_interval=30,
        read_connection=connections.read,
        build=lambda connection: FakeClient(connection.host),
        clock=lambda: now[0],
    )

    async def scenario():
        held = await registry.acquire("bank")
        connections.content["bank"] = "v2"
        now[0] = 29
        assert await registry.renew(held, failing=True) is held
        now[0] = 31
        assert await registry.renew(held) is held  # the polls answer: the full interval holds
        newer = await registry.renew(held, failing=True)
        assert newer.client.name == "v2"
        assert held.client.closed
        registry.release(newer)

    asyncio.run(scenario())


class FakeClient:
    def __init__(self, name):
        self.name, self.closed = name, False

    def close(self):
        self.closed = True


class Connections:
    """Connection content by id, and what reading it does (a fake: the registry's bookkeeping only)."""

    def __init__(self):
        self.content, self.fail = {"bank": "v1"}, False

    def read(self, conn_id):
        if self.fail:
            raise RuntimeError("the supervisor did not answer")
        from airflow.sdk import Connection

        return Connection(conn_id=conn_id, conn_type="bankapi", host=self.content[conn_id])


def test_a_connection_that_cannot_be_read_again_keeps_the_client_and_concurrent_takers_share_one_build():
    connections, now = Connections(), [0.0]
    registry = ClientRegistry(
        recheck_interval=10,
        read_connection=connections.read,
        build=lambda connection: FakeClient(connection.host),
        clock=lambda: now[0],
    )

    async def scenario():
        held = await asyncio.gather(*(registry.acquire("bank") for _ in range(20)))
        assert registry.builds == 1
        assert len({id(shared) for shared in held}) == 1
        now[0] = 11
        connections.fail = True
        kept = await registry.renew(held[0])
        assert kept is held[0]
        assert not kept.client.closed
        connections.fail, connections.content["bank"] = False, "v2"
        now[0] = 22
        newer = await registry.renew(held[0])
        assert newer is not held[0]
        assert newer.client.name == "v2"
        assert not held[0].client.closed  # 19 triggers still poll with it
        for shared in held[1:]:
            registry.release(shared)
        assert held[0].client.closed
        registry.release(newer)
        assert newer.client.closed
        assert registry.snapshot() == {}

    asyncio.run(scenario())

"""BankingApiEventTrigger against the sandbox bank: an event when a balance comes to cross a threshold."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.sdk import Asset, AssetWatcher

from airflow_provider_bankapi.triggers.events import BankingApiEventTrigger
from airflow_provider_bankapi.triggers.polling import Condition

ACCOUNT = "123"


@pytest.fixture
def bank(bankapi_sandbox, monkeypatch):
    conn = bankapi_sandbox.connection
    conn["extra"]["max_retries"] = 0
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(conn))
    bankapi_sandbox.set_available_balance(ACCOUNT, "100.00")
    return bankapi_sandbox


class AssetState:
    """The asset state store's async accessors over a dict: what the triggerer injects for one asset."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.reads = self.writes = 0

    async def aget(self, key, default=None):
        self.reads += 1
        return self.values.get(key, default)

    async def aset(self, key, value):
        self.writes += 1
        self.values[key] = value


async def _events_while(trigger, steps, bank):
    """Run the trigger while ``steps`` (a callable each, then the number of balance polls the bank must
    serve before the next step) change the bank; its events. Counting polls, not seconds, keeps the test
    the same on a loaded machine."""
    events = []

    async def collect():
        async for event in trigger.run():
            events.append(event.payload)

    async def polls_served(count):
        start = await asyncio.to_thread(lambda: bank.counters()["api_requests"])
        for _ in range(600):  # 60 s at most: a poll every 0.1 s
            if await asyncio.to_thread(lambda: bank.counters()["api_requests"]) >= start + count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the trigger made fewer than {count} polls in 60 s")

    task = asyncio.create_task(collect())
    try:
        for step, polls in steps:
            await asyncio.to_thread(step)
            await polls_served(polls)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return events


def test_one_event_each_time_the_balance_comes_to_cross_the_threshold(bank):
    trigger = BankingApiEventTrigger.for_balance(ACCOUNT, "1500.00", poke_interval=0.1)
    trigger.asset_state_store = AssetState()

    def set_to(amount):
        return lambda: bank.set_available_balance(ACCOUNT, amount)

    events = asyncio.run(
        _events_while(
            trigger,
            [
                (set_to("100.00"), 3),  # below: polls, no event
                (set_to("2000.00"), 3),  # crosses: one event, though every poll still sees it above
                (set_to("1499.99"), 3),  # below again
                (set_to("1500.00"), 3),  # crosses again (at least 1500.00): a second event
            ],
            bank,
        )
    )

    assert [(event["status"], event["value"]) for event in events] == [("met", "2000.00"), ("met", "1500.00")]
    assert all(event["endpoint"] == f"/accounts/{ACCOUNT}/balance" for event in events)


def test_polls_ask_the_asset_state_once_and_write_it_only_when_the_condition_changes(bank):
    # Each read or write of the asset state is a request to the triggerer's supervisor: a read per poll of
    # a thousand watchers kept it busy at a whole core.
    trigger = BankingApiEventTrigger.for_balance(ACCOUNT, "1500.00", poke_interval=0.1)
    trigger.asset_state_store = state = AssetState()

    def set_to(amount):
        return lambda: bank.set_available_balance(ACCOUNT, amount)

    events = asyncio.run(_events_while(trigger, [(set_to("100.00"), 5), (set_to("2000.00"), 5)], bank))

    assert len(events) == 1
    assert state.reads == 1
    assert state.writes == 1  # above; below was already what no state means


def _after_restart(state, bank):
    """The events of a trigger rebuilt as the triggerer rebuilds it after a restart (from the serialized
    kwargs, with the asset's state), over three polls."""
    prototype = BankingApiEventTrigger.for_balance(ACCOUNT, "1500.00", poke_interval=0.1)
    trigger = BankingApiEventTrigger(**prototype.serialize()[1])
    trigger.asset_state_store = state
    return asyncio.run(_events_while(trigger, [(lambda: None, 3)], bank))


def test_a_restarted_trigger_does_not_fire_again_for_a_balance_that_stayed_above(bank):
    state = AssetState()
    bank.set_available_balance(ACCOUNT, "2000.00")
    assert len(_after_restart(state, bank)) == 1
    assert _after_restart(state, bank) == []


def test_a_trigger_restarted_below_the_threshold_fires_at_the_next_crossing(bank):
    # The first trigger fired and stopped while the balance was above: the state says "held". Its successor
    # sees the balance below: it must record that, or a third trigger would take the next crossing for
    # the old one and stay silent.
    state = AssetState()
    bank.set_available_balance(ACCOUNT, "2000.00")
    assert len(_after_restart(state, bank)) == 1
    bank.set_available_balance(ACCOUNT, "100.00")
    assert _after_restart(state, bank) == []
    bank.set_available_balance(ACCOUNT, "2000.00")  # the third's first answer: above
    assert [event["value"] for event in _after_restart(state, bank)] == ["2000.00"]


def test_a_refused_credential_is_not_polled_at_the_interval(bank, monkeypatch):
    conn = bank.connection
    conn["password"] = "not-the-secret-0123456789"
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(conn))
    trigger = BankingApiEventTrigger.for_balance(ACCOUNT, "1.00", poke_interval=0.05, backoff_max=30)

    def refused():
        return sum(bank.counters()["token_refused"].values())

    async def run():
        events = []

        async def collect():
            async for event in trigger.run():
                events.append(event.payload)

        task = asyncio.create_task(collect())
        try:
            for _ in range(600):  # the first refusal, however loaded the machine (60 s at most)
                if await asyncio.to_thread(refused):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # twenty poke intervals after it
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return events

    assert asyncio.run(run()) == []
    assert refused() == 1


def test_a_secret_corrected_in_the_connection_is_picked_up_at_the_next_poll_after_a_refusal(
    bank, monkeypatch
):
    from airflow_provider_bankapi.triggers.clients import CLIENTS

    good = bank.connection
    wrong = {**good, "password": "not-the-secret-0123"}
    monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(wrong))
    monkeypatch.setattr(CLIENTS, "recheck_interval", 3600.0)  # only a failing poll reads it again here
    monkeypatch.setattr(CLIENTS, "failing_recheck_interval", 0.0)
    trigger = BankingApiEventTrigger.for_balance(ACCOUNT, "1.00", poke_interval=0.05, backoff_max=0.5)

    async def run():
        events = trigger.run()
        first = asyncio.ensure_future(anext(events))
        for _ in range(600):  # the first refusal, however loaded the machine (60 s at most)
            if await asyncio.to_thread(lambda: sum(bank.counters()["token_refused"].values())):
                break
            await asyncio.sleep(0.1)
        monkeypatch.setenv("AIRFLOW_CONN_BANKAPI_DEFAULT", json.dumps(good))
        try:
            return (await asyncio.wait_for(first, 20)).payload
        finally:
            await events.aclose()

    assert asyncio.run(run())["status"] == "met"
    assert sum(bank.counters()["token_refused"].values()) >= 1  # it did poll with the wrong secret first


def test_the_trigger_is_an_asset_watchers_and_its_kwargs_hold_no_secret(bank):
    trigger = BankingApiEventTrigger.for_balance(ACCOUNT, 1500, poke_interval=60)
    asset = Asset("bankapi_funds", watchers=[AssetWatcher(name="funds", trigger=trigger)])

    classpath, kwargs = asset.watchers[0].trigger.serialize()
    assert classpath == "airflow_provider_bankapi.triggers.events.BankingApiEventTrigger"
    assert kwargs["condition"] == Condition(field="available", comparison=">=", value="1500").to_dict()
    assert bank.connection["password"] not in json.dumps(kwargs)


def test_a_threshold_that_is_no_number_is_refused_naming_it():
    with pytest.raises(ValueError, match="threshold"):
        BankingApiEventTrigger.for_balance(ACCOUNT, "lots")

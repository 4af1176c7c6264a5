"""Hosts that share a token renew it at spread moments, so that the first one's token serves the others.

Two token caches stand for two hosts; a memory store marked ``spans_hosts`` stands for the Airflow
Variable they share (the real one needs a running task). A fetch takes time at the bank: while one
host fetches, the other looks the token up at the same instant, which is when both would fetch.
"""

from __future__ import annotations

import contextlib

import pytest

from airflow_provider_bankapi.client.tokens.cache import (
    HOST_SPREAD,
    MemoryTokenStore,
    TokenCache,
    host_margin,
)
from airflow_provider_bankapi.client.tokens.values import AccessToken

KEY = "ab" * 32
LIFETIME = 3600.0
MARGIN = 300.0
DAY = 24 * 3600


class SharedStore(MemoryTokenStore):
    name = "cluster"
    spans_hosts = True

    def lock(self, key):
        return contextlib.nullcontext()  # as the Variable store: no lock across hosts


class Bank:
    """Issues tokens, counting them; while one host's fetch is in flight, the other host looks up."""

    def __init__(self, clock):
        self.clock, self.issued, self.hosts, self.in_flight = clock, 0, [], False

    def fetcher(self, host_index):
        def fetch():
            if not self.in_flight and len(self.hosts) > 1:
                self.in_flight = True
                try:
                    other = self.hosts[1 - host_index]
                    other.get(KEY, self.fetcher(1 - host_index))
                finally:
                    self.in_flight = False
            self.issued += 1
            now = self.clock()
            return AccessToken(f"token-{self.issued}", "Bearer", now, now + LIFETIME)

        return fetch


def tokens_in_a_day(*host_names):
    now = [1_800_000_000.0]
    shared = SharedStore()
    bank = Bank(lambda: now[0])
    stores = [[MemoryTokenStore(), shared] for _ in host_names]
    bank.hosts = [
        TokenCache(own, margin=MARGIN, clock=lambda: now[0], host=name)
        for own, name in zip(stores, host_names, strict=True)
    ]
    end = now[0] + DAY
    while now[0] < end:  # every host asks for the token every second, all at the same instants
        for index, cache in enumerate(bank.hosts):
            cache.get(KEY, bank.fetcher(index))
        now[0] += 1
    return bank.issued


def test_each_host_renews_inside_the_margin_at_a_moment_fixed_by_its_name():
    margins = [host_margin(MARGIN, f"worker-{n}") for n in range(50)]

    assert all(MARGIN * (1 - HOST_SPREAD) <= margin <= MARGIN for margin in margins)
    assert host_margin(MARGIN, "worker-1") == host_margin(MARGIN, "worker-1")
    assert len(set(margins)) == 50
    assert max(margins) - min(margins) > MARGIN * HOST_SPREAD / 2


def test_a_cache_without_a_shared_store_keeps_the_margin_as_it_is():
    assert TokenCache([MemoryTokenStore()], margin=MARGIN, host="worker-1").margin == MARGIN
    assert TokenCache([SharedStore()], margin=MARGIN, host="worker-1").margin == host_margin(
        MARGIN, "worker-1"
    )


@pytest.mark.parametrize(
    ("hosts", "extra"),
    [
        pytest.param(("worker-1", "worker-2"), 1, id="two-hosts-one-token-per-lifetime"),
        pytest.param(("worker-1", "worker-1"), None, id="same-moment-hosts-fetch-one-each"),
    ],
)
def test_two_hosts_after_a_simultaneous_cold_start_fetch_as_many_tokens_as_one(hosts, extra):
    one_host = tokens_in_a_day(hosts[0])

    two_hosts = tokens_in_a_day(*hosts)

    if extra is not None:
        # The cold start costs one token per host; from the first renewal on, one token serves both.
        assert two_hosts == one_host + extra
    else:
        assert two_hosts == 2 * one_host  # renewing at the same moment, each host fetches its own

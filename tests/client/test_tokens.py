"""Tokens: strict parsing, freshness with the bank's margin, the cache's single flight, the host store."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_bankapi.client.host_store import HostTokenStore, default_cache_dir
from airflow_provider_bankapi.client.tokens import (
    AccessToken,
    MemoryTokenStore,
    TokenCache,
    cache_key,
    parse_token_response,
)
from airflow_provider_bankapi.errors import ConfigurationError, TokenResponseError

NOW = 1_800_000_000.0
KEY = cache_key("https://bank/v1/auth/token-v2", "client", "ab" * 32)


def token(value: str = "tok", *, issued: float = NOW, lifetime: float = 3600) -> AccessToken:
    return AccessToken(value, "Bearer", issued, issued + lifetime)


# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "lifetime"),
    [
        pytest.param(
            {"access_token": "a", "token_type": "Bearer", "expires_in": 3600}, 3600, id="documented"
        ),
        pytest.param(
            {"access_token": "a", "token_type": "bearer", "expires_in": "60"}, 60, id="string-lower"
        ),
        pytest.param({"access_token": "a", "token_type": "BEARER", "expires_in": 5.0}, 5, id="whole-float"),
        pytest.param(b'{"access_token":"a","token_type":"Bearer","expires_in":1}', 1, id="bytes"),
    ],
)
def test_parse_accepts_the_contracts_shapes(body, lifetime):
    parsed = parse_token_response(body, now=NOW)
    assert (parsed.access_token, parsed.token_type, parsed.issued_at) == ("a", "Bearer", NOW)
    assert parsed.expires_at == NOW + lifetime


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b"<html>", "body", id="not-json"),
        pytest.param(b"[1]", "body", id="not-an-object"),
        pytest.param({"token_type": "Bearer", "expires_in": 1}, "access_token", id="no-token"),
        pytest.param(
            {"access_token": "", "token_type": "Bearer", "expires_in": 1}, "access_token", id="empty"
        ),
        pytest.param(
            {"access_token": 7, "token_type": "Bearer", "expires_in": 1}, "access_token", id="number"
        ),
        pytest.param({"access_token": "a", "token_type": "MAC", "expires_in": 1}, "token_type", id="mac"),
        pytest.param({"access_token": "a", "expires_in": 1}, "token_type", id="no-type"),
        pytest.param({"access_token": "a", "token_type": "Bearer"}, "expires_in", id="no-expiry"),
        pytest.param({"access_token": "a", "token_type": "Bearer", "expires_in": 0}, "expires_in", id="zero"),
        pytest.param(
            {"access_token": "a", "token_type": "Bearer", "expires_in": -5}, "expires_in", id="negative"
        ),
        pytest.param(
            {"access_token": "a", "token_type": "Bearer", "expires_in": "1h"}, "expires_in", id="text"
        ),
        pytest.param(
            {"access_token": "a", "token_type": "Bearer", "expires_in": True}, "expires_in", id="bool"
        ),
        pytest.param(
            {"access_token": "a", "token_type": "Bearer", "expires_in": 1.5}, "expires_in", id="fraction"
        ),
        pytest.param(
            {"access_token": "a", "token_type": "Bearer", "expires_in": 10**12}, "expires_in", id="absurd"
        ),
        pytest.param(
            {"access_token": "a", "token_type": "Bearer", "expires_in": None}, "expires_in", id="null"
        ),
    ],
)
def test_parse_names_the_field_at_fault(body, field):
    with pytest.raises(TokenResponseError) as caught:
        parse_token_response(body, now=NOW)
    assert caught.value.field == field


def test_parse_error_never_shows_the_token():
    with pytest.raises(TokenResponseError) as caught:
        parse_token_response({"access_token": "SECRET-TOKEN-VALUE", "token_type": "x"}, now=NOW)
    assert "SECRET-TOKEN-VALUE" not in str(caught.value)
    assert "SECRET-TOKEN-VALUE" not in repr(
        parse_token_response(
            {"access_token": "SECRET-TOKEN-VALUE", "token_type": "Bearer", "expires_in": 9}, now=NOW
        )
    )


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["access_token", "token_type", "expires_in", "scope"]), JSONISH, max_size=4
    )
    | JSONISH
    | st.binary(max_size=64)
)
def test_parse_raises_only_token_response_errors(body):
    try:
        parsed = parse_token_response(body, now=NOW)
    except TokenResponseError:
        return
    assert parsed.expires_at > parsed.issued_at
    assert parsed.access_token


@given(st.text(min_size=1, max_size=64).filter(str.strip), st.integers(1, 366 * 24 * 3600), st.booleans())
def test_parse_accepts_every_valid_token(value, lifetime, as_string):
    body = {
        "access_token": value,
        "token_type": "Bearer",
        "expires_in": str(lifetime) if as_string else lifetime,
    }
    parsed = parse_token_response(json.dumps(body), now=NOW)
    assert parsed.access_token == value.strip()
    assert parsed.lifetime == lifetime


# -- freshness -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "age", "fresh"),
    [
        pytest.param(3600, 0, True, id="new"),
        pytest.param(3600, 3299, True, id="just-before-the-5-minutes"),
        pytest.param(3600, 3300, False, id="5-minutes-before-expiry"),
        pytest.param(3600, 4000, False, id="expired"),
        pytest.param(60, 29, True, id="short-lived-margin-capped-at-half"),
        pytest.param(60, 30, False, id="short-lived-half-gone"),
    ],
)
def test_freshness_keeps_the_banks_margin_but_never_more_than_half(lifetime, age, fresh):
    assert token(lifetime=lifetime).is_fresh(NOW + age, margin=300) is fresh


def test_cache_key_depends_on_certificate_and_never_on_the_secret():
    base = cache_key("https://bank/v1/auth/token-v2", "client", "aa" * 32)
    assert base != cache_key("https://bank/v1/auth/token-v2", "client", "bb" * 32)
    assert base != cache_key("https://other/v1/auth/token-v2", "client", "aa" * 32)
    assert base != cache_key("https://bank/v1/auth/token-v2", "client2", "aa" * 32)
    assert len(base) == 64
    assert set(base) <= set("0123456789abcdef")


# -- the cache -------------------------------------------------------------------------------------


def test_cache_fetches_once_then_serves_until_stale():
    clock = [NOW]
    fetched = []

    def fetch():
        fetched.append(1)
        return token(str(len(fetched)), issued=clock[0])

    cache = TokenCache([MemoryTokenStore()], margin=300, clock=lambda: clock[0])
    assert cache.get(KEY, fetch).access_token == "1"
    clock[0] += 3000
    assert cache.get(KEY, fetch).access_token == "1"
    clock[0] += 400
    assert cache.get(KEY, fetch).access_token == "2"
    assert len(fetched) == 2


def test_cache_copies_a_hit_from_a_slower_store_into_faster_ones(tmp_path):
    memory, host = MemoryTokenStore(), HostTokenStore(tmp_path / "tokens")
    host.save(KEY, token("from-disk"))
    cache = TokenCache([memory, host], clock=lambda: NOW)
    assert cache.get(KEY, lambda: pytest.fail("must not fetch")).access_token == "from-disk"
    assert memory.load(KEY).access_token == "from-disk"


def test_threads_on_a_cold_cache_fetch_one_token():
    fetched = []

    def fetch():
        fetched.append(1)
        time.sleep(0.05)
        return token()

    cache = TokenCache([MemoryTokenStore()], clock=lambda: NOW)
    threads = [threading.Thread(target=cache.get, args=(KEY, fetch)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fetched) == 1


def test_invalidate_drops_only_the_token_that_failed(tmp_path):
    memory, host = MemoryTokenStore(), HostTokenStore(tmp_path / "tokens")
    cache = TokenCache([memory, host], clock=lambda: NOW)
    old = cache.get(KEY, lambda: token("old"))
    host.save(KEY, token("newer"))  # another process already replaced it
    cache.invalidate(KEY, old)
    assert memory.load(KEY) is None
    assert host.load(KEY).access_token == "newer"


class BrokenStore:
    name = "broken"

    def load(self, key):
        raise OSError("disk gone")

    save = discard = load

    def lock(self, key):
        raise OSError("disk gone")


def test_a_failing_store_degrades_to_a_miss_never_to_an_error(caplog):
    cache = TokenCache([BrokenStore(), MemoryTokenStore()], clock=lambda: NOW)
    assert cache.get(KEY, lambda: token("ok")).access_token == "ok"
    assert "broken" in caplog.text


def test_without_stores_a_client_still_reuses_its_own_token():
    fetched = []
    cache = TokenCache([], clock=lambda: NOW)
    for _ in range(3):
        cache.get(KEY, lambda: fetched.append(1) or token())
    assert len(fetched) == 1


# -- the host store --------------------------------------------------------------------------------


def test_host_store_files_are_private_and_atomic(tmp_path):
    store = HostTokenStore(tmp_path / "tokens")
    store.save(KEY, token("secret-token"))
    assert stat.S_IMODE((tmp_path / "tokens").stat().st_mode) == 0o700
    files = list((tmp_path / "tokens").iterdir())
    assert [path.name for path in files] == [f"{KEY}.json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert store.load(KEY) == token("secret-token")


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda path: path.write_text("{not json"), id="corrupt"),
        pytest.param(lambda path: path.chmod(0o644), id="readable-by-others"),
        pytest.param(lambda path: os.chown(path, 12345, 12345), id="foreign-owner"),
        pytest.param(lambda path: path.write_text(json.dumps({"key": "0" * 64})), id="other-key"),
    ],
)
def test_host_store_ignores_an_untrustworthy_file_and_replaces_it(tmp_path, spoil):
    store = HostTokenStore(tmp_path / "tokens")
    store.save(KEY, token("planted"))
    spoil(tmp_path / "tokens" / f"{KEY}.json")
    assert store.load(KEY) is None
    cache = TokenCache([store], clock=lambda: NOW)
    assert cache.get(KEY, lambda: token("fresh")).access_token == "fresh"
    assert store.load(KEY).access_token == "fresh"


def test_host_store_refuses_a_foreign_directory(tmp_path):
    directory = tmp_path / "tokens"
    directory.mkdir()
    os.chown(directory, 12345, 12345)
    with pytest.raises(ConfigurationError):
        HostTokenStore(directory).save(KEY, token())


def test_host_store_closes_a_too_open_directory_of_ours(tmp_path):
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    HostTokenStore(directory).save(KEY, token())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "airflow-provider-bankapi" / "tokens"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "airflow-provider-bankapi" / "tokens"


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from airflow_provider_bankapi.client.host_store import HostTokenStore
    from airflow_provider_bankapi.client.tokens import AccessToken, MemoryTokenStore, TokenCache

    directory, log, key = sys.argv[1:4]
    sys.stdin.readline()  # start together

    def fetch():
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\\n")
        time.sleep(0.3)
        now = time.time()
        return AccessToken(f"token-{os.getpid()}", "Bearer", now, now + 3600)

    cache = TokenCache([MemoryTokenStore(), HostTokenStore(directory)])
    print(cache.get(key, fetch).access_token)
    """
)


def test_twelve_processes_on_a_cold_host_store_fetch_one_token(tmp_path):
    log = tmp_path / "fetches.log"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "tokens"), str(log), KEY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(12)
    ]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    tokens = {child.communicate(timeout=120)[0].strip() for child in children}
    assert len(log.read_text().splitlines()) == 1
    assert len(tokens) == 1

"""Tokens without I/O: strict parsing, freshness with the bank's margin, the cache key, the stored
record, and the cache's rules (lookup order, copy-back, single flight, failing stores, invalidation).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading

import pytest

from airflow_provider_bankapi.client.tokens.cache import MemoryTokenStore, TokenCache
from airflow_provider_bankapi.client.tokens.values import (
    MAX_LIFETIME,
    AccessToken,
    cache_key,
    parse_token_response,
    token_from_record,
    token_record,
)
from airflow_provider_bankapi.errors import (
    ConfigurationError,
    InvalidCredentialsError,
    ServerError,
    TokenResponseError,
)

NOW = 1_800_000_000.0
SECRET = "eyJTOKEN.SECRET-VALUE_0123456789"
KEY = cache_key("https://bank/v1/auth/token-v2", "client", "ab" * 32, "secret")


def token(value: str = "tok", *, issued: float = NOW, lifetime: float = 3600) -> AccessToken:
    return AccessToken(value, "Bearer", issued, issued + lifetime)


def body(**fields: object) -> dict[str, object]:
    return {"access_token": "a", "token_type": "Bearer", "expires_in": 3600} | fields


def without(name: str) -> dict[str, object]:
    return {key: value for key, value in body().items() if key != name}


# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "lifetime"),
    [
        pytest.param(body(), 3600, id="documented"),
        pytest.param(body(token_type="bearer"), 3600, id="type-lowercase"),
        pytest.param(body(token_type="BEARER"), 3600, id="type-uppercase"),
        pytest.param(body(expires_in="60"), 60, id="expires-digit-string"),
        pytest.param(body(expires_in="0060"), 60, id="expires-leading-zeros"),
        pytest.param(body(expires_in=5.0), 5, id="expires-whole-float"),
        pytest.param(body(expires_in=1), 1, id="expires-one-second"),
        pytest.param(body(expires_in=MAX_LIFETIME), MAX_LIFETIME, id="expires-a-year"),
        pytest.param(body(scope="accounts", refresh_token="r"), 3600, id="extra-fields-ignored"),
        pytest.param(b'{"access_token":"a","token_type":"Bearer","expires_in":1}', 1, id="bytes"),
        pytest.param('{"access_token":"a","token_type":"Bearer","expires_in":3.6e3}', 3600, id="exponent"),
        pytest.param(json.dumps(body()).encode("utf-16"), 3600, id="utf-16-bytes"),
    ],
)
def test_parse_accepts_the_contracts_shapes(raw, lifetime):
    parsed = parse_token_response(raw, now=NOW)
    assert (parsed.access_token, parsed.token_type, parsed.issued_at) == ("a", "Bearer", NOW)
    assert parsed.expires_at == NOW + lifetime


def test_parse_keeps_a_jwt_whole():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjbGllbnQifQ.c2lnbmF0dXJl-_+/=="
    assert parse_token_response(body(access_token=jwt), now=NOW).access_token == jwt


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(b"<html>", "body", id="not-json"),
        pytest.param(b"\xff\xfe\xfa", "body", id="not-utf"),
        pytest.param(b"", "body", id="empty"),
        pytest.param(b"[1]", "body", id="array"),
        pytest.param(b"null", "body", id="null"),
        pytest.param(b'"token"', "body", id="string"),
        pytest.param(b"[" * 100_000, "body", id="deeply-nested"),
        pytest.param(b" " * (1024 * 1024 + 1), "body", id="too-large"),
        pytest.param(without("access_token"), "access_token", id="token-missing"),
        pytest.param(body(access_token=""), "access_token", id="token-empty"),
        pytest.param(body(access_token=None), "access_token", id="token-null"),
        pytest.param(body(access_token=7), "access_token", id="token-number"),
        pytest.param(body(access_token=["a"]), "access_token", id="token-array"),
        pytest.param(body(access_token=" a"), "access_token", id="token-leading-space"),
        pytest.param(body(access_token="a\r\nX-Injected: 1"), "access_token", id="token-header-injection"),
        pytest.param(body(access_token="tøken"), "access_token", id="token-non-ascii"),
        pytest.param(body(access_token="a" * (16 * 1024 + 1)), "access_token", id="token-too-long"),
        pytest.param(without("token_type"), "token_type", id="type-missing"),
        pytest.param(body(token_type="MAC"), "token_type", id="type-mac"),
        pytest.param(body(token_type="Bearer "), "token_type", id="type-trailing-space"),
        pytest.param(body(token_type=None), "token_type", id="type-null"),
        pytest.param(body(token_type=1), "token_type", id="type-number"),
        pytest.param(without("expires_in"), "expires_in", id="expires-missing"),
        pytest.param(body(expires_in=None), "expires_in", id="expires-null"),
        pytest.param(body(expires_in=0), "expires_in", id="expires-zero"),
        pytest.param(body(expires_in=-5), "expires_in", id="expires-negative"),
        pytest.param(body(expires_in="-5"), "expires_in", id="expires-negative-string"),
        pytest.param(body(expires_in="0"), "expires_in", id="expires-zero-string"),
        pytest.param(body(expires_in=True), "expires_in", id="expires-bool"),
        pytest.param(body(expires_in=1.5), "expires_in", id="expires-fraction"),
        pytest.param(body(expires_in="1.5"), "expires_in", id="expires-fraction-string"),
        pytest.param(body(expires_in=float("nan")), "expires_in", id="expires-nan"),
        pytest.param(body(expires_in=float("inf")), "expires_in", id="expires-inf"),
        pytest.param(
            b'{"access_token":"a","token_type":"Bearer","expires_in":NaN}', "expires_in", id="nan-json"
        ),
        pytest.param(body(expires_in="1h"), "expires_in", id="expires-text"),
        pytest.param(body(expires_in=" 60"), "expires_in", id="expires-padded"),
        pytest.param(body(expires_in="+60"), "expires_in", id="expires-plus-sign"),
        pytest.param(body(expires_in="6_0"), "expires_in", id="expires-underscore"),
        pytest.param(body(expires_in="٣٦٠٠"), "expires_in", id="expires-arabic-indic-digits"),
        pytest.param(body(expires_in="²"), "expires_in", id="expires-superscript"),
        pytest.param(body(expires_in="9" * 5000), "expires_in", id="expires-5000-digits"),
        pytest.param(body(expires_in=10**400), "expires_in", id="expires-huge-int"),
        pytest.param(body(expires_in=MAX_LIFETIME + 1), "expires_in", id="expires-above-a-year"),
        pytest.param(body(expires_in=[3600]), "expires_in", id="expires-array"),
    ],
)
def test_parse_names_the_field_at_fault(raw, field):
    with pytest.raises(TokenResponseError) as caught:
        parse_token_response(raw, now=NOW)
    assert caught.value.field == field
    assert "auth_endpoint" in caught.value.hint


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(body(access_token=SECRET, token_type=SECRET), id="token-in-type"),
        pytest.param(body(access_token=SECRET, expires_in=SECRET), id="token-in-expires"),
        pytest.param(body(access_token=SECRET + "\n"), id="bad-token"),
        pytest.param(body(access_token=SECRET + " x"), id="token-with-space"),
        pytest.param({"client_secret": SECRET, "token_type": "Bearer"}, id="secret-beside"),
        pytest.param(json.dumps({"access_token": SECRET, "expires_in": 1}) + SECRET, id="broken-json"),
    ],
)
def test_parse_errors_never_show_a_value_from_the_body(raw):
    with pytest.raises(TokenResponseError) as caught:
        parse_token_response(raw, now=NOW)
    shown = f"{caught.value} {caught.value!r} {caught.value.args} {caught.value.__cause__!r}"
    assert SECRET not in shown
    assert "SECRET" not in shown


def test_the_token_is_never_in_a_repr():
    parsed = parse_token_response(body(access_token=SECRET), now=NOW)
    assert SECRET not in repr(parsed)
    assert SECRET not in repr([parsed, {"token": parsed}])


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="inf"),
        pytest.param(True, id="bool"),
        pytest.param("1800000000", id="string"),
    ],
)
def test_parse_refuses_a_bad_now_as_the_callers_bug(now):
    with pytest.raises(ValueError, match="now"):
        parse_token_response(body(), now=now)


# -- AccessToken and freshness ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(("", "Bearer", NOW, NOW + 1), id="empty-token"),
        pytest.param(("a b", "Bearer", NOW, NOW + 1), id="space-in-token"),
        pytest.param((None, "Bearer", NOW, NOW + 1), id="token-not-a-string"),
        pytest.param(("a", "", NOW, NOW + 1), id="empty-type"),
        pytest.param(("a", "Bearer", "x", "y"), id="times-as-text"),
        pytest.param(("a", "Bearer", NOW, float("nan")), id="nan-expiry"),
        pytest.param(("a", "Bearer", NOW, float("inf")), id="infinite-expiry"),
        pytest.param(("a", "Bearer", True, NOW), id="bool-issued"),
        pytest.param(("a", "Bearer", NOW, NOW), id="no-lifetime"),
        pytest.param(("a", "Bearer", NOW, NOW - 1), id="expires-before-issued"),
        pytest.param(("a", "Bearer", NOW, NOW + MAX_LIFETIME + 1), id="lives-over-a-year"),
    ],
)
def test_an_access_token_refuses_insane_fields(fields):
    with pytest.raises(ValueError, match="access_token|token_type|issued_at|lives") as caught:
        AccessToken(*fields)
    assert "a b" not in str(caught.value)


@pytest.mark.parametrize(
    ("lifetime", "age", "margin", "fresh"),
    [
        pytest.param(3600, 0, 300, True, id="new"),
        pytest.param(3600, 3299.9, 300, True, id="just-before-the-5-minutes"),
        pytest.param(3600, 3300, 300, False, id="at-the-5-minutes"),
        pytest.param(3600, 3600, 300, False, id="at-expiry"),
        pytest.param(3600, 4000, 300, False, id="expired"),
        pytest.param(60, 29.9, 300, True, id="short-lived-first-half"),
        pytest.param(60, 30, 300, False, id="short-lived-margin-capped-at-half"),
        pytest.param(600, 299.9, 300, True, id="margin-equals-half"),
        pytest.param(600, 300, 300, False, id="margin-equals-half-reached"),
        pytest.param(3600, 3599.9, 0, True, id="no-margin-until-expiry"),
        pytest.param(3600, 3600, 0, False, id="no-margin-at-expiry"),
        pytest.param(3600, 3600, -100, False, id="negative-margin-never-past-expiry"),
        pytest.param(3600, 3600, float("nan"), False, id="nan-margin-never-past-expiry"),
        pytest.param(3600, float("nan"), 300, False, id="nan-clock"),
        pytest.param(3600, -10, 300, True, id="clock-before-issue"),
    ],
)
def test_freshness_keeps_the_banks_margin_but_never_more_than_half(lifetime, age, margin, fresh):
    assert token(lifetime=lifetime).is_fresh(NOW + age, margin) is fresh


def test_the_default_margin_is_the_banks_five_minutes():
    assert token().is_fresh(NOW + 3299) is True
    assert token().is_fresh(NOW + 3300) is False


# -- cache key -------------------------------------------------------------------------------------

URL, CLIENT, FINGERPRINT, SECRET = "https://bank/v1/auth/token-v2", "client", "aa" * 32, "s3cr3t"


@pytest.mark.parametrize(
    "other",
    [
        pytest.param((URL, CLIENT, "bb" * 32), id="another-certificate"),
        pytest.param(("https://other/v1/auth/token-v2", CLIENT, FINGERPRINT), id="another-token-url"),
        pytest.param((URL, "client2", FINGERPRINT), id="another-client-id"),
    ],
)
def test_the_cache_key_separates_every_part(other):
    assert cache_key(*other, SECRET) != cache_key(URL, CLIENT, FINGERPRINT, SECRET)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("s3cr3T", id="wrong-secret"),
        pytest.param("s3cr3t-rotated", id="rotated-secret"),
    ],
)
def test_the_cache_key_is_bound_to_the_secret_and_shows_nothing_of_it(secret):
    right = cache_key(URL, CLIENT, FINGERPRINT, SECRET)
    assert cache_key(URL, CLIENT, FINGERPRINT, secret) != right
    assert cache_key(URL, CLIENT, FINGERPRINT, SECRET) == right  # the same secret: the same key
    assert SECRET not in right
    assert hashlib.sha256(SECRET.encode()).hexdigest() not in right


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param((URL + "c", "lient"), (URL, "client"), id="concatenation"),
        pytest.param((URL + '","c', "lient"), (URL, 'c","lient'), id="json-quotes"),
        pytest.param((URL + "|c", "lient"), (URL, "c|lient"), id="separator"),
    ],
)
def test_the_cache_key_encoding_is_unambiguous(first, second):
    assert cache_key(*first, FINGERPRINT, SECRET) != cache_key(*second, FINGERPRINT, SECRET)


@pytest.mark.parametrize(
    "fingerprint",
    [
        pytest.param("AA" * 32, id="uppercase"),
        pytest.param(":".join(["AA"] * 32), id="colon-separated"),
    ],
)
def test_the_cache_key_reads_a_fingerprint_in_any_notation(fingerprint):
    assert cache_key(URL, CLIENT, fingerprint, SECRET) == cache_key(URL, CLIENT, FINGERPRINT, SECRET)


def test_the_cache_key_is_a_sha256_hex_digest():
    key = cache_key(URL, CLIENT, FINGERPRINT, SECRET)
    assert len(key) == 64
    assert set(key) <= set("0123456789abcdef")
    assert CLIENT not in key


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param((URL, CLIENT, "", SECRET), id="no-fingerprint"),
        pytest.param((URL, CLIENT, "ab" * 20, SECRET), id="sha1-fingerprint"),
        pytest.param((URL, CLIENT, "zz" * 32, SECRET), id="not-hex"),
        pytest.param(("", CLIENT, FINGERPRINT, SECRET), id="no-url"),
        pytest.param((URL, "", FINGERPRINT, SECRET), id="no-client-id"),
        pytest.param((URL, CLIENT, FINGERPRINT, ""), id="no-secret"),
    ],
)
def test_the_cache_key_refuses_to_pool_tokens_of_unknown_certificates(parts):
    with pytest.raises(ValueError, match="fingerprint|empty"):
        cache_key(*parts)


# -- stored record ---------------------------------------------------------------------------------


def test_a_record_reads_back_the_same_token():
    assert token_from_record(KEY, token_record(KEY, token(SECRET))) == token(SECRET)
    assert token_from_record(KEY, token_record(KEY, token(SECRET)).encode()) == token(SECRET)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param("{not json", id="corrupt"),
        pytest.param("[]", id="not-an-object"),
        pytest.param(token_record("0" * 64, token(SECRET)), id="another-key"),
        pytest.param(
            token_record(KEY, token(SECRET)).replace("bankapi-token/1", "bankapi-token/0"), id="old-format"
        ),
        pytest.param(
            json.dumps({"format": "bankapi-token/1", "key": KEY, "access_token": SECRET}), id="no-expiry"
        ),
        pytest.param(
            token_record(KEY, token(SECRET)).replace('"issued_at":', '"issued_at":-1e300,"x":'), id="absurd"
        ),
    ],
)
def test_a_record_that_is_not_ours_or_not_sane_is_refused_without_showing_the_token(record):
    with pytest.raises(ValueError, match="token record") as caught:
        token_from_record(KEY, record)
    assert SECRET not in str(caught.value)


# -- the cache -------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """A fetch that counts its calls and issues tokens at the clock's time."""

    def __init__(self, clock: Clock, lifetime: float = 3600) -> None:
        self.clock, self.lifetime, self.calls = clock, lifetime, 0

    def __call__(self) -> AccessToken:
        self.calls += 1
        return token(f"token-{self.calls}", issued=self.clock(), lifetime=self.lifetime)


class DictStore:
    """A store like the Airflow Variable one: no compare-and-set, no lock of its own."""

    name = "cluster"

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.calls: list[str] = []

    def load(self, key):
        self.calls.append("load")
        raw = self.values.get(key)
        return None if raw is None else token_from_record(key, raw)

    def save(self, key, token):
        self.calls.append("save")
        self.values[key] = token_record(key, token)

    def discard(self, key, token=None):
        self.calls.append("discard")
        current = self.load(key)
        if token is None or current is None or current.access_token == token.access_token:
            self.values.pop(key, None)

    def lock(self, key):
        return contextlib.nullcontext()


class BrokenStore:
    name = "broken"

    def __init__(
        self,
        exc: Exception,
        broken: tuple[str, ...] = ("load", "save", "discard", "lock"),
        holds: AccessToken | None = None,
    ) -> None:
        self.exc, self.broken, self.calls, self.holds = exc, broken, [], holds

    def _maybe_fail(self, operation):
        self.calls.append(operation)
        if operation in self.broken:
            raise self.exc

    def load(self, key):
        self._maybe_fail("load")
        return self.holds

    def save(self, key, token):
        self._maybe_fail("save")

    def discard(self, key, token=None):
        self._maybe_fail("discard")

    @contextlib.contextmanager
    def lock(self, key):
        self._maybe_fail("lock")
        yield
        self._maybe_fail("unlock")


def test_the_cache_fetches_once_then_serves_until_the_margin():
    clock = Clock()
    fetch = Fetcher(clock)
    cache = TokenCache([MemoryTokenStore()], clock=clock)
    assert cache.get(KEY, fetch).access_token == "token-1"
    clock.now += 3299
    assert cache.get(KEY, fetch).access_token == "token-1"
    clock.now += 1
    assert cache.get(KEY, fetch).access_token == "token-2"
    assert fetch.calls == 2


@pytest.mark.parametrize("position", [pytest.param(1, id="second-store"), pytest.param(2, id="third-store")])
def test_a_fresh_hit_in_a_slower_store_is_copied_into_the_faster_ones(position):
    stores = [MemoryTokenStore(), DictStore(), DictStore()]
    stores[position].save(KEY, token("from-afar"))
    cache = TokenCache(stores, clock=Clock())
    assert cache.get(KEY, lambda: pytest.fail("must not fetch")).access_token == "from-afar"
    assert [store.load(KEY).access_token for store in stores[:position]] == ["from-afar"] * position


def test_a_stale_token_in_a_fast_store_gives_way_to_a_fresh_one_further_on():
    memory, far = MemoryTokenStore(), DictStore()
    memory.save(KEY, token("stale", issued=NOW - 3500))
    far.save(KEY, token("fresh"))
    cache = TokenCache([memory, far], clock=Clock())
    assert cache.get(KEY, lambda: pytest.fail("must not fetch")).access_token == "fresh"
    assert memory.load(KEY).access_token == "fresh"


def test_a_miss_fetches_once_and_saves_to_every_store():
    stores = [MemoryTokenStore(), DictStore(), DictStore()]
    cache = TokenCache(stores, clock=Clock())
    fetched = cache.get(KEY, Fetcher(Clock()))
    assert [store.load(KEY) for store in stores] == [fetched] * 3


@pytest.mark.parametrize(
    "stale",
    [
        pytest.param(lambda: token("old", issued=NOW - 3300), id="inside-the-margin"),
        pytest.param(lambda: token("old", issued=NOW - 3600), id="at-expiry"),
        pytest.param(lambda: token("old", issued=NOW - 7200), id="long-expired"),
    ],
)
def test_a_stale_token_is_never_returned_from_any_store(stale):
    memory, far = MemoryTokenStore(), DictStore()
    memory.save(KEY, stale())
    far.save(KEY, stale())
    assert TokenCache([memory, far], clock=Clock()).get(KEY, Fetcher(Clock())).access_token == "token-1"


class CountingMemoryStore(MemoryTokenStore):
    """A process store that counts the callers that missed and queued for its lock."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = 0
        self.changed = threading.Condition()

    @contextlib.contextmanager
    def lock(self, key):
        with self.changed:
            self.queued += 1
            self.changed.notify_all()
        with super().lock(key):
            yield


def test_threads_on_a_cold_cache_fetch_one_token():
    shared, calls, release = CountingMemoryStore(), [], threading.Event()
    caches = [TokenCache([shared], clock=Clock()) for _ in range(4)]  # several clients, one process store
    start = threading.Barrier(16)
    results = []

    def fetch():
        calls.append(1)
        release.wait(10)  # hold the lock until every thread has missed and queued behind it
        return token()

    def worker(number):
        start.wait()
        results.append(caches[number % 4].get(KEY, fetch))

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(16)]
    for thread in threads:
        thread.start()
    with shared.changed:
        assert shared.changed.wait_for(lambda: shared.queued == 16, timeout=10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert [result.access_token for result in results] == ["tok"] * 16


def test_each_token_the_cache_hands_out_reaches_on_secret_once_fetched_or_loaded():
    clock = Clock()
    far = DictStore()
    far.save(KEY, token("left-by-another-process"))
    revealed: list[str] = []
    cache = TokenCache([MemoryTokenStore(), far], clock=clock, on_secret=revealed.append)
    fetch = Fetcher(clock)

    cache.get(KEY, fetch)
    cache.get(KEY, fetch)
    cache.get(KEY, fetch, refused=token("left-by-another-process"))
    cache.get(KEY, fetch)

    assert revealed == ["left-by-another-process", "token-1"]


def test_a_refused_token_is_dropped_and_a_newer_one_from_another_worker_is_taken():
    memory, far = MemoryTokenStore(), DictStore()
    cache = TokenCache([memory, far], clock=Clock())
    old = cache.get(KEY, lambda: token("old"))
    far.save(KEY, token("newer"))  # another worker already replaced it
    renewed = cache.get(KEY, lambda: pytest.fail("must not fetch"), refused=old)
    assert renewed.access_token == "newer"
    assert memory.load(KEY).access_token == "newer"
    assert far.load(KEY).access_token == "newer"


def test_after_a_refusal_the_next_get_fetches_anew_and_later_gets_reuse_it():
    clock = Clock()
    fetch = Fetcher(clock)
    cache = TokenCache([MemoryTokenStore(), DictStore()], clock=clock)
    first = cache.get(KEY, fetch)
    assert cache.get(KEY, fetch, refused=first).access_token == "token-2"
    assert cache.get(KEY, fetch).access_token == "token-2"
    assert fetch.calls == 2


def test_a_refused_token_copied_back_by_another_thread_is_never_handed_out_again():
    """The race behind a day's mass failure: thread A's call gets 401 and renews; thread B, between
    A's forgetting the token in memory and in the host store, reads it from the host store and copies
    it back into memory. A renewal that deleted first and then looked up would find the refused token
    again and send it, to a second 401.
    """
    clock = Clock()
    fetch = Fetcher(clock)
    memory, far = MemoryTokenStore(), DictStore()
    cache = TokenCache([memory, far], clock=clock)
    refused = cache.get(KEY, fetch)
    memory.discard(KEY, refused)  # A's first step...
    cache.get(KEY, fetch)  # ...B's lookup: a miss in memory, a hit on the host, copied back
    assert memory.load(KEY).access_token == refused.access_token

    renewed = cache.get(KEY, fetch, refused=refused)

    assert renewed.access_token == "token-2"
    assert memory.load(KEY).access_token == far.load(KEY).access_token == "token-2"


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(OSError(28, "No space left on device"), id="oserror"),
        pytest.param(ConfigurationError("directory open to others", field="cache_scope"), id="refused-dir"),
        pytest.param(TimeoutError("lock held too long"), id="lock-timeout"),
        pytest.param(RuntimeError("a foreign store's bug"), id="any-exception"),
    ],
)
def test_a_failing_store_is_skipped_for_the_call_never_failing_it(exc, caplog):
    broken = BrokenStore(exc)
    memory = MemoryTokenStore()
    cache = TokenCache([memory, broken], clock=Clock())
    assert cache.get(KEY, lambda: token(SECRET)).access_token == SECRET
    assert broken.calls == ["load"]  # skipped for the rest of the call once it failed
    assert memory.load(KEY).access_token == SECRET
    assert "Token store broken failed to load" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "broken_operation",
    [
        pytest.param("lock", id="lock"),
        pytest.param("unlock", id="unlock"),
        pytest.param("save", id="save"),
        pytest.param("discard", id="discard"),
    ],
)
def test_each_store_operation_may_fail_without_failing_the_call(broken_operation, caplog):
    broken = BrokenStore(OSError("disk gone"), broken=(broken_operation,), holds=token("ok"))
    cache = TokenCache([MemoryTokenStore(), broken], clock=Clock())
    fetched = cache.get(KEY, lambda: token("ok"))
    assert fetched.access_token == "ok"
    assert cache.get(KEY, lambda: token("renewed"), refused=fetched).access_token == "renewed"
    assert f"failed to {broken_operation}" in caplog.text


def test_a_store_returning_something_else_than_a_token_is_ignored(caplog):
    class OddStore(DictStore):
        def load(self, key):
            return {"access_token": "planted"}

    cache = TokenCache([OddStore()], clock=Clock())
    assert cache.get(KEY, lambda: token("fetched")).access_token == "fetched"
    assert "not a token" in caplog.text


def test_a_failed_fetch_releases_every_lock():
    memory, far = MemoryTokenStore(lock_timeout=1), DictStore()
    cache = TokenCache([memory, far], clock=Clock())

    def failing():
        raise ConnectionError("bank unreachable")

    with pytest.raises(ConnectionError):
        cache.get(KEY, failing)
    with memory.lock(KEY):  # would time out if the failed call had kept it
        pass
    assert cache.get(KEY, lambda: token("later")).access_token == "later"


def test_a_token_that_expired_before_it_arrived_is_refused_and_not_cached():
    far = DictStore()
    cache = TokenCache([far], clock=Clock(NOW + 10))
    with pytest.raises(TokenResponseError) as caught:
        cache.get(KEY, lambda: token(lifetime=5))
    assert caught.value.field == "expires_in"
    assert far.values == {}


def test_a_token_already_inside_its_margin_is_used_once_but_not_cached():
    far = DictStore()
    cache = TokenCache([far], clock=Clock(NOW + 4))
    assert cache.get(KEY, lambda: token("short", lifetime=6)).access_token == "short"
    assert far.values == {}


def test_a_store_without_lock_or_compare_and_set_fits_behind_memory():
    memory, cluster = MemoryTokenStore(), DictStore()
    clock = Clock()
    fetch = Fetcher(clock)
    cache = TokenCache([memory, cluster], clock=clock)
    first = cache.get(KEY, fetch)
    assert cluster.calls == ["load", "load", "save"]  # looked up, looked up again under the lock, saved
    other_worker = TokenCache([MemoryTokenStore(), cluster], clock=clock)
    assert other_worker.get(KEY, fetch) == first
    assert fetch.calls == 1


def test_without_stores_a_client_still_reuses_its_own_token():
    clock = Clock()
    fetch = Fetcher(clock)
    cache = TokenCache([], clock=clock)
    for _ in range(3):
        cache.get(KEY, fetch)
    assert fetch.calls == 1


@pytest.mark.parametrize(
    "margin",
    [
        pytest.param(-1, id="negative"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="infinite"),
        pytest.param(True, id="bool"),
    ],
)
def test_the_cache_refuses_a_margin_that_could_outlive_a_token(margin):
    with pytest.raises(ValueError, match="margin"):
        TokenCache([], margin=margin)


def test_the_cache_logs_no_token(caplog):
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    cache = TokenCache([MemoryTokenStore(), BrokenStore(OSError("disk gone"))], clock=clock)
    first = cache.get(KEY, lambda: token(SECRET))
    cache.get(KEY, lambda: token(SECRET + "2"), refused=first)
    assert caplog.records
    assert SECRET not in caplog.text


class RefusingFetch:
    """A token request the bank refuses, counted; ``error`` decides how."""

    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def __call__(self) -> AccessToken:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "asked"),
    [
        pytest.param(InvalidCredentialsError("401 Invalid Credentials", status_code=401), 1, id="refused"),
        pytest.param(ServerError("503", status_code=503), 3, id="transient-asks-again"),
    ],
)
def test_a_refused_token_request_is_the_answer_for_a_while_and_a_transient_failure_is_not(error, asked):
    clock = Clock()
    cache = TokenCache([MemoryTokenStore()], clock=clock, refusal_memory=30)
    fetch = RefusingFetch(error)

    raised = []
    for _ in range(3):
        with pytest.raises(type(error)) as caught:
            cache.get(KEY, fetch)
        raised.append(caught.value)

    assert fetch.calls == asked
    assert all(str(each) == str(error) for each in raised)
    clock.now += 30  # the memory has passed: the bank is asked again (the credential may be active again)
    with pytest.raises(type(error)):
        cache.get(KEY, fetch)
    assert fetch.calls == asked + 1


def test_a_refusal_remembered_does_not_hide_a_token_another_sharer_fetched():
    clock = Clock()
    store = MemoryTokenStore()
    refused = TokenCache([store], clock=clock)
    with pytest.raises(InvalidCredentialsError):
        refused.get(KEY, RefusingFetch(InvalidCredentialsError("401", status_code=401)))
    store.save(KEY, token("fixed", issued=clock()))  # another process's client, with the right secret

    assert refused.get(KEY, Fetcher(clock)).access_token == "fixed"


def test_threads_renewing_at_once_after_a_refusal_share_one_refused_answer():
    cache = TokenCache([MemoryTokenStore()], clock=Clock())
    fetch = RefusingFetch(InvalidCredentialsError("401 Invalid Credentials", status_code=401))
    start = threading.Barrier(16)
    outcomes: list[BaseException] = []

    def renew():
        start.wait()
        try:
            cache.get(KEY, fetch)
        except InvalidCredentialsError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=renew) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (fetch.calls, len(outcomes)) == (1, 16)
    assert len({id(exc) for exc in outcomes}) == 16  # each thread its own copy: tracebacks do not mix

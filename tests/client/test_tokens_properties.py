"""Properties of token parsing, freshness and the stored record, over generated inputs (hypothesis)."""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from airflow_provider_bankapi.client.tokens.values import (
    MAX_BODY_BYTES,
    MAX_LIFETIME,
    MAX_TOKEN_LENGTH,
    AccessToken,
    parse_token_response,
    token_from_record,
    token_record,
)
from airflow_provider_bankapi.errors import TokenResponseError

NOW = 1_800_000_000.0
KEY = "ab" * 32

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["Bearer", "bearer", "3600", "٣٦٠٠", "²", " 60", "1e3", "-1", "9" * 5000]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)
FIELDS = st.dictionaries(
    st.sampled_from(["access_token", "token_type", "expires_in", "scope", "refresh_token"]),
    JSONISH,
    max_size=5,
)
# Visible ASCII: what a token may hold (it is sent in an Authorization header as is).
TOKEN_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=200)
# A secret as a bank issues one: high entropy. A short lowercase draw could spell a word of the error's
# own wording ("auth_endpoin" is in the hint), which is no leak; one with every character class cannot.
SECRET_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=12, max_size=40).filter(
    lambda s: all(any(test(c) for c in s) for test in (str.isdigit, str.islower, str.isupper))
    and any(not c.isalnum() for c in s)
)


def bearer_in_any_case():
    return st.tuples(*[st.sampled_from([c.lower(), c.upper()]) for c in "bearer"]).map("".join)


def valid_expires_in():
    seconds = st.integers(1, MAX_LIFETIME)
    return st.one_of(
        seconds,
        seconds.map(str),
        seconds.map(lambda value: f"{value:012d}"),  # leading zeros are still digits
        seconds.map(float),
    )


def attempt(raw) -> AccessToken | TokenResponseError:
    """The parsed token, or the TokenResponseError (any other exception fails the test)."""
    try:
        return parse_token_response(raw, now=NOW)
    except TokenResponseError as exc:
        return exc


def encodings(document):
    text = json.dumps(document)
    return st.sampled_from([document, text, text.encode("utf-8"), text.encode("utf-16")])


@given(FIELDS | JSONISH | st.binary(max_size=64) | st.text(max_size=64))
def test_parse_raises_nothing_but_token_response_errors(raw):
    outcome = attempt(raw)
    if isinstance(outcome, TokenResponseError):
        assert outcome.field in {"body", "access_token", "token_type", "expires_in"}
    else:
        assert 0 < outcome.expires_at - outcome.issued_at <= MAX_LIFETIME
        assert outcome.token_type == "Bearer"


@given(FIELDS.flatmap(encodings))
def test_parse_raises_nothing_but_token_response_errors_on_encoded_bodies(raw):
    assert isinstance(attempt(raw), (AccessToken, TokenResponseError))


@given(
    st.data(),
    TOKEN_TEXT,
    bearer_in_any_case(),
    valid_expires_in(),
    st.dictionaries(st.sampled_from(["scope", "refresh_token", "id"]), JSONISH, max_size=2),
)
def test_parse_accepts_every_valid_shape(data, value, token_type, expires_in, extra):
    document = {**extra, "access_token": value, "token_type": token_type, "expires_in": expires_in}
    parsed = parse_token_response(data.draw(encodings(document)), now=NOW)
    assert parsed.access_token == value
    assert parsed.token_type == "Bearer"
    assert parsed.issued_at == NOW
    assert parsed.lifetime == int(float(expires_in))


@given(SECRET_TEXT, FIELDS)
def test_no_error_message_ever_shows_the_token(secret, fields):
    assume(secret not in json.dumps(fields))  # a generated field may not hold it by chance
    # Nor may the fixed wording every error shares ("access_token" is a field's name, not a leak).
    assume(secret not in attempt({}).hint)
    for name in ("access_token", "token_type", "expires_in"):
        document = {**fields, "access_token": secret, name: fields.get(name, secret)}
        for raw in (document, json.dumps(document)):
            outcome = attempt(raw)
            if isinstance(outcome, TokenResponseError):
                assert secret not in f"{outcome} {outcome!r} {outcome.hint}"


@given(
    st.floats(0, 4e9),
    st.integers(1, MAX_LIFETIME),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e10, 1e10) | st.just(math.nan),
)
def test_a_fresh_token_is_always_inside_its_stated_lifetime(issued, lifetime, margin, offset):
    token = AccessToken("t", "Bearer", issued, issued + lifetime)
    now = issued + offset
    if token.is_fresh(now, margin):
        assert now < token.expires_at
    if math.isfinite(margin) and margin >= 0 and now < issued + lifetime / 2 - 1e-3:
        assert token.is_fresh(now, margin)  # the margin never eats the first half of a lifetime


@given(
    st.floats(0, 4e9), st.integers(1, MAX_LIFETIME), st.floats(0, 1e6), st.floats(0, 1e9), st.floats(0, 1e9)
)
def test_freshness_only_ever_ends(issued, lifetime, margin, earlier, later):
    token = AccessToken("t", "Bearer", issued, issued + lifetime)
    first, second = sorted((issued + earlier, issued + later))
    assert not (token.is_fresh(second, margin) and not token.is_fresh(first, margin))


@given(st.floats(0, 4e9), st.sampled_from([1, 3600, MAX_LIFETIME - 1, MAX_LIFETIME]))
@example(506968725.5413906, MAX_LIFETIME)  # issued + MAX_LIFETIME rounds a little past MAX_LIFETIME
def test_the_longest_lifetime_parses_at_any_moment(now, lifetime):
    body = json.dumps({"access_token": "t", "token_type": "Bearer", "expires_in": lifetime})
    assert parse_token_response(body, now=now).lifetime == pytest.approx(lifetime, abs=1e-3)


@given(TOKEN_TEXT, st.floats(0, 4e9), st.integers(1, MAX_LIFETIME))
def test_a_stored_record_reads_back_exactly(value, issued, lifetime):
    token = AccessToken(value, "Bearer", issued, issued + lifetime)
    assert token_from_record(KEY, token_record(KEY, token)) == token


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_a_record_is_either_a_sane_token_or_a_value_error(record):
    try:
        token = token_from_record(KEY, record)
    except ValueError:
        return
    assert 0 < token.lifetime <= MAX_LIFETIME


# -- each bad field of a token answer is named, in bounded time -------------------------------------

VALID_ANSWER = {"access_token": "a-token", "token_type": "Bearer", "expires_in": 3600}
NOT_WHOLE_SECONDS = st.floats(allow_nan=True, allow_infinity=True).filter(
    lambda value: not (math.isfinite(value) and value.is_integer() and 1 <= value <= MAX_LIFETIME)
)
BAD_VALUES = {
    "access_token": st.one_of(
        st.just(""),
        st.none() | st.booleans() | st.integers() | st.floats() | st.lists(st.text(max_size=3), max_size=2),
        st.text(min_size=1, max_size=30).filter(lambda text: not _header_safe(text)),
        st.just("t" * (MAX_TOKEN_LENGTH + 1)),
    ),
    "token_type": st.one_of(
        st.text(max_size=20).filter(lambda text: text.lower() != "bearer"),
        st.sampled_from(["MAC", "DPoP", "Basic", "Bearer ", " bearer", "Bearer\n"]),
        st.none() | st.booleans() | st.integers() | st.lists(st.just("Bearer"), max_size=1),
    ),
    "expires_in": st.one_of(
        st.integers(max_value=0),  # zero and negative
        st.integers(min_value=MAX_LIFETIME + 1),  # absurdly long
        NOT_WHOLE_SECONDS,  # fractions, NaN, infinities, huge floats
        st.text(max_size=12).filter(lambda text: not (text.isascii() and text.isdigit()) or int(text) < 1),
        st.sampled_from(["3600s", "1h", " 60", "60 ", "1e3", "-60", "0x10", "٣٦٠٠", "", "9" * 400]),
        st.none() | st.booleans() | st.lists(st.integers(), max_size=2) | st.just({"seconds": 60}),
    ),
}


def _header_safe(text: str) -> bool:
    return all(0x21 <= ord(char) <= 0x7E for char in text)


def refused_within_a_second(raw) -> TokenResponseError:
    # The bound the answer's parser promises: refused at once, never after a long computation.
    started = time.monotonic()
    outcome = attempt(raw)
    assert time.monotonic() - started < 1.0
    assert isinstance(outcome, TokenResponseError), "a bad answer was accepted"
    return outcome


@given(st.sampled_from(sorted(BAD_VALUES)).flatmap(lambda name: st.tuples(st.just(name), BAD_VALUES[name])))
def test_each_bad_field_is_named(case):
    name, value = case
    error = refused_within_a_second({**VALID_ANSWER, name: value})
    assert error.field == name
    assert name in error.message  # the message names the field too, not only the attribute


@given(st.sampled_from(sorted(VALID_ANSWER)), st.sampled_from(["dict", "json"]))
def test_a_missing_field_is_named(name, form):
    answer = {key: value for key, value in VALID_ANSWER.items() if key != name}
    error = refused_within_a_second(answer if form == "dict" else json.dumps(answer))
    assert (error.field, "missing" in error.message or "no " + name in error.message) == (name, True)


@given(
    st.one_of(
        st.binary(max_size=100).filter(lambda raw: not _json_object(raw)),
        st.sampled_from([b"<html>Bad Gateway</html>", b"", b"null", b"[]", b'"token"', b"\xff\xfe{}"]),
        st.integers(1, 60).map(lambda depth: "[" * (depth * 2000) + "]" * (depth * 2000)),  # deep nesting
    )
)
def test_a_body_that_is_not_a_json_object_is_named(raw):
    assert refused_within_a_second(raw).field == "body"


@given(st.integers(MAX_BODY_BYTES + 1, 8 * MAX_BODY_BYTES), st.sampled_from(["padding", "token"]))
def test_a_huge_body_is_refused_without_parsing_it(size, where):
    filler = "x" * size
    answer = (
        {**VALID_ANSWER, "scope": filler} if where == "padding" else {**VALID_ANSWER, "access_token": filler}
    )
    error = refused_within_a_second(json.dumps(answer).encode())
    assert error.field == "body"
    assert filler[:64] not in error.message


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False

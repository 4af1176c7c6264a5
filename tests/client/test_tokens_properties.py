"""Properties of token parsing, freshness and the stored record, over generated inputs (hypothesis)."""

from __future__ import annotations

import json
import math

from hypothesis import assume, given
from hypothesis import strategies as st

from airflow_provider_bankapi.client.tokens import (
    MAX_LIFETIME,
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
SECRET_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=12, max_size=40)


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

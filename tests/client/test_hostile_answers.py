"""Small hostile answers stay in the error tree and leave nothing raw in a log, without sockets: the known
secret values removed in every spelling, bodies nested hundreds deep, a Retry-After of thousands of
digits, control characters from a text body.
"""

from __future__ import annotations

import html
import json
import unicodedata

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_bankapi.client.redaction import Redactor
from airflow_provider_bankapi.client.transport.answers import (
    MAX_DEPTH,
    body_excerpt,
    error_for_status,
    find_bank_phrase,
    json_body,
    raise_for_bank_status,
    scrub,
)
from airflow_provider_bankapi.client.transport.retry import RETRY_AFTER_CEILING, parse_retry_after
from airflow_provider_bankapi.errors import ApiError, RateLimitedError, ServerError, printable

SECRET = 'Zq9/x+T k"é&<Secret>'


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(SECRET, id="as-is"),
        pytest.param("Zq9/x%2BT%20k%22%C3%A9%26%3CSecret%3E", id="path-encoded"),
        pytest.param("Zq9%2Fx%2BT%20k%22%C3%A9%26%3CSecret%3E", id="url-encoded"),
        pytest.param("Zq9%2fx%2bT%20k%22%c3%a9%26%3cSecret%3e", id="percent-escapes-in-lower-case"),
        pytest.param("Zq9%2Fx%2BT+k%22%C3%A9%26%3CSecret%3E", id="form-encoded"),
        pytest.param('Zq9/x+T k\\"\\u00e9&<Secret>', id="json-escaped-ascii"),
        pytest.param('Zq9/x+T k\\"é&<Secret>', id="json-escaped"),
        pytest.param(html.escape(SECRET), id="xml-escaped"),
        pytest.param('Zq9/x+T k"é&amp;&lt;Secret&gt;', id="xml-text"),
    ],
)
def test_the_redactor_removes_a_known_value_in_every_spelling(spelling):
    assert Redactor([SECRET])(f"before {spelling} after") == "before *** after"


def test_the_redactor_learns_values_later_ignores_empty_ones_and_never_shows_them():
    redactor = Redactor(["", None])
    assert redactor("token-1 and s3cret") == "token-1 and s3cret"

    redactor.add("token-1")
    redactor.add(b"s3cret")

    assert redactor("token-1 and s3cret") == "*** and ***"
    assert "token-1" not in repr(redactor)


@given(st.text())
def test_printable_leaves_no_control_character(text):
    assert not any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in printable(text))


FORGED = "oops\x1b[2K\r[2026-01-01 00:00:00] INFO - Marking task as SUCCESS\x1b[0m\nmore"


@pytest.mark.parametrize("status", [pytest.param(400, id="400"), pytest.param(503, id="503")])
def test_control_characters_of_a_text_body_are_escaped_in_the_excerpt_and_message(status):
    error = error_for_status(status, FORGED, method="GET", path="/accounts/1/balance")

    for text in (error.message, error.body_excerpt, str(error)):
        assert not any(char in text for char in "\x1b\r\n")
    assert "\\x1b[2K" in error.body_excerpt


def test_a_non_json_2xx_body_is_escaped_in_the_message_too():
    response = requests.Response()
    response.status_code = 200
    response._content = FORGED.encode()
    response.headers["Content-Type"] = "text/plain\x1b[31m"
    with pytest.raises(ApiError) as caught:
        json_body(response, method="GET", path="/accounts/1/balance")

    assert "\x1b" not in caught.value.message
    assert "\\x1b" in caught.value.message


def nested(depth: int, inner: object) -> str:
    """``inner`` inside ``depth`` objects and arrays: 500 deep is about 3 KB."""
    text = json.dumps(inner)
    for level in range(depth):
        text = f'{{"e":{text}}}' if level % 2 else f"[{text}]"
    return text


@pytest.mark.parametrize(
    ("status", "expected"), [pytest.param(400, ApiError, id="400"), pytest.param(503, ServerError, id="503")]
)
def test_a_body_nested_500_deep_is_the_error_of_its_status(status, expected):
    body = nested(500, {"client_secret": SECRET, "message": "Invalid Credentials"})
    assert len(body) < 4096

    error = error_for_status(status, body, method="POST", path="/auth/token-v2")

    assert type(error) is expected
    assert SECRET not in str(error) + error.body_excerpt


def test_the_walkers_stop_at_their_depth_and_still_mask_what_they_reach():
    shallow = nested(MAX_DEPTH - 2, {"access_token": SECRET, "detail": "Forbidden"})
    deep = nested(MAX_DEPTH + 10, {"detail": "Forbidden"})

    assert SECRET not in scrub(shallow)
    assert find_bank_phrase(shallow) == "Forbidden"
    assert find_bank_phrase(deep) is None  # beyond the walk: the status decides
    assert scrub(deep).count("[") <= MAX_DEPTH


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("9" * 5000, RETRY_AFTER_CEILING, id="5000-digits"),
        pytest.param("1" + "0" * 4300, RETRY_AFTER_CEILING, id="4301-digits"),
        pytest.param("0" * 5000 + "7", 7.0, id="leading-zeros"),
        pytest.param(str(int(RETRY_AFTER_CEILING)), RETRY_AFTER_CEILING, id="the-ceiling"),
    ],
)
def test_a_retry_after_of_thousands_of_digits_is_bounded(value, expected):
    assert parse_retry_after(value, now=0.0) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [pytest.param(429, RateLimitedError, id="429"), pytest.param(503, ServerError, id="503")],
)
def test_an_answer_with_a_5000_digit_retry_after_is_the_error_of_its_status(status, expected):
    response = requests.Response()
    response.status_code = status
    response._content = b"{}"
    response.headers["Retry-After"] = "9" * 5000
    response.request = requests.Request("GET", "https://bank.example/v1/accounts/1/balance").prepare()

    with pytest.raises(expected) as caught:
        raise_for_bank_status(response, method="GET", path="/accounts/1/balance")

    assert caught.value.transient
    assert getattr(caught.value, "retry_after", RETRY_AFTER_CEILING) == RETRY_AFTER_CEILING


def test_the_excerpt_redacts_before_it_cuts():
    body = "x" * 290 + SECRET  # the cut at 300 characters would leave the start of the secret
    excerpt = body_excerpt(body, redact=Redactor([SECRET]))

    assert SECRET[:5] not in excerpt
    assert excerpt.endswith("***")

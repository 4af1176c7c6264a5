"""The bank's HTTP answers -> the error tree, without sockets: phrases, statuses, excerpts, scrubbing."""

from __future__ import annotations

import email.utils
import json
import time

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_bankapi.client.transport.answers import (
    BANK_PHRASES,
    EXCERPT_LIMIT,
    SCAN_LIMIT,
    body_excerpt,
    error_for_status,
    find_bank_phrase,
    gateway_certificate_refusal,
    json_body,
    raise_for_bank_status,
    scrub,
)
from airflow_provider_bankapi.errors import (
    HINT_CERTIFICATE_NOT_SENT,
    HINT_CERTIFICATE_NOT_VERIFIED,
    HINT_FORBIDDEN,
    HINT_INVALID_CLIENT_CERTIFICATE,
    HINT_INVALID_CREDENTIALS,
    HINT_RATE_LIMITED,
    HINT_SERVER_ERROR,
    HINT_TOKEN_REFUSED,
    HINT_UNAUTHENTICATED,
    ApiError,
    ForbiddenError,
    InvalidClientCertificateError,
    InvalidCredentialsError,
    RateLimitedError,
    ServerError,
)

NGINX_NO_CERT = (
    "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n"
    "<center><h1>400 Bad Request</h1></center>\r\n<center>No required SSL certificate was sent</center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
# nginx 1.22 (ssl_verify_client on) as it answers a client certificate its CA did not sign, or an
# expired one; byte for byte, with the default server_tokens.
NGINX_CERT_ERROR = (
    "<html>\r\n<head><title>400 The SSL certificate error</title></head>\r\n<body>\r\n"
    "<center><h1>400 Bad Request</h1></center>\r\n<center>The SSL certificate error</center>\r\n"
    "<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
)


# -- finding the bank's phrase ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param('{"message": "Invalid Credentials"}', "Invalid Credentials", id="flat"),
        pytest.param(
            '{"error": {"detail": ["x", {"m": "invalid credentials"}]}}', "Invalid Credentials", id="nested"
        ),
        pytest.param('["INVALID CLIENT CERTIFICATE"]', "Invalid Client Certificate", id="list-uppercase"),
        pytest.param('"Forbidden"', "Forbidden", id="bare-json-string"),
        pytest.param('{"code": "INVALID_CREDENTIALS"}', "Invalid Credentials", id="underscored-code"),
        pytest.param(
            '{"m": "Invalid\\u0020Client  Certificate"}', "Invalid Client Certificate", id="escaped"
        ),
        pytest.param("Error: Invalid Credentials.", "Invalid Credentials", id="plain-text"),
        pytest.param("<h1>403 Forbidden</h1>", "Forbidden", id="html"),
        pytest.param(
            '{"message": "Invalid Credentials", "x": "Forbidden"}', "Invalid Credentials", id="first-wins"
        ),
        pytest.param('{"Invalid Credentials": 1}', None, id="keys-are-not-fields"),
        pytest.param('{"message": "Unauthorized"}', None, id="no-phrase"),
        pytest.param('{"message": "forbiddenness"}', None, id="whole-words-only"),
        pytest.param("", None, id="empty"),
        pytest.param("{broken json Invalid Credentials", "Invalid Credentials", id="broken-json-raw-text"),
    ],
)
def test_find_bank_phrase(body, expected):
    assert find_bank_phrase(body) == expected


_FILLER = st.text(alphabet="0123456789 .,:xyz", max_size=20)
_JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), _FILLER)


def _json_with(phrase_text):
    """Any JSON structure, with ``phrase_text`` inside one string at any depth."""
    holder = st.builds(lambda before, after: f"{before} {phrase_text}. {after}", _FILLER, _FILLER)
    return st.recursive(
        holder,
        lambda children: st.one_of(
            st.builds(
                lambda xs, x, i: [*xs[:i], x, *xs[i:]],
                st.lists(_JSON_LEAVES, max_size=3),
                children,
                st.integers(0, 3),
            ),
            st.builds(
                lambda d, k, x: {**d, k: x},
                st.dictionaries(_FILLER, _JSON_LEAVES, max_size=3),
                st.text(alphabet="abc_", min_size=1, max_size=8),
                children,
            ),
        ),
        max_leaves=8,
    )


@given(st.data())
def test_phrase_found_anywhere_in_any_json_shape(data):
    phrase = data.draw(st.sampled_from(BANK_PHRASES))
    flips = data.draw(st.lists(st.booleans(), min_size=len(phrase), max_size=len(phrase)))
    spelled = "".join(c.upper() if flip else c.lower() for c, flip in zip(phrase, flips, strict=True))
    body = json.dumps(data.draw(_json_with(spelled)))
    assert find_bank_phrase(body) == phrase


@given(
    st.recursive(_JSON_LEAVES, lambda c: st.lists(c, max_size=3) | st.dictionaries(_FILLER, c, max_size=3))
)
def test_no_phrase_in_json_without_one(value):
    assert find_bank_phrase(json.dumps(value)) is None


# -- statuses -> errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "bearer", "error_type", "hint", "bank_reason"),
    [
        pytest.param(
            401,
            '{"message": "Invalid Credentials"}',
            False,
            InvalidCredentialsError,
            HINT_INVALID_CREDENTIALS,
            "Invalid Credentials",
            id="401-invalid-credentials",
        ),
        pytest.param(
            401,
            '{"error": "invalid_client", "message": "Invalid Client Certificate"}',
            False,
            InvalidClientCertificateError,
            HINT_INVALID_CLIENT_CERTIFICATE,
            "Invalid Client Certificate",
            id="401-invalid-client-certificate",
        ),
        pytest.param(
            403,
            '{"message": "Forbidden"}',
            True,
            ForbiddenError,
            HINT_FORBIDDEN,
            "Forbidden",
            id="403-forbidden",
        ),
        pytest.param(403, "", True, ForbiddenError, HINT_FORBIDDEN, None, id="403-no-body"),
        pytest.param(
            400,
            '{"detail": "Invalid Credentials"}',
            False,
            InvalidCredentialsError,
            HINT_INVALID_CREDENTIALS,
            "Invalid Credentials",
            id="400-phrase-wins",
        ),
        pytest.param(
            401,
            '{"error": "invalid_token", "message": "Unauthorized"}',
            True,
            ApiError,
            HINT_TOKEN_REFUSED,
            None,
            id="401-token-refused",
        ),
        pytest.param(401, "", False, ApiError, HINT_UNAUTHENTICATED, None, id="401-token-call-no-phrase"),
        pytest.param(
            400,
            NGINX_NO_CERT,
            False,
            InvalidClientCertificateError,
            HINT_CERTIFICATE_NOT_SENT,
            None,
            id="400-nginx-no-certificate",
        ),
        pytest.param(
            400,
            "<html><title>400 The SSL certificate error</title></html>",
            False,
            InvalidClientCertificateError,
            HINT_CERTIFICATE_NOT_VERIFIED,
            None,
            id="400-ssl-cert-error",
        ),
        pytest.param(
            495, "", False, InvalidClientCertificateError, HINT_CERTIFICATE_NOT_VERIFIED, None, id="495"
        ),
        pytest.param(
            496,
            "SSL Certificate Required",
            False,
            InvalidClientCertificateError,
            HINT_CERTIFICATE_NOT_SENT,
            None,
            id="496",
        ),
        pytest.param(400, '{"error": "unsupported_grant_type"}', False, ApiError, "", None, id="400-plain"),
        pytest.param(
            429,
            '{"message": "Forbidden"}',
            True,
            RateLimitedError,
            HINT_RATE_LIMITED,
            "Forbidden",
            id="429-whatever-the-body",
        ),
        pytest.param(
            500,
            "Invalid Credentials",
            True,
            ServerError,
            HINT_SERVER_ERROR,
            "Invalid Credentials",
            id="500-whatever-the-body",
        ),
        pytest.param(503, "", True, ServerError, HINT_SERVER_ERROR, None, id="503"),
        pytest.param(529, "", True, ServerError, HINT_SERVER_ERROR, None, id="529-site-overloaded"),
        pytest.param(404, '{"error": "not_found"}', True, ApiError, None, None, id="404"),
    ],
)
def test_error_for_status(status, body, bearer, error_type, hint, bank_reason):
    error = error_for_status(status, body, method="get", path="/accounts/1/balance?x=1", bearer_sent=bearer)
    assert type(error) is error_type
    if hint is not None:
        assert error.hint == hint
    assert error.bank_reason == bank_reason
    assert (error.status_code, error.method, error.path) == (status, "GET", "/accounts/1/balance")


@pytest.mark.parametrize(
    ("status", "body", "hint", "what"),
    [
        pytest.param(
            400, NGINX_NO_CERT, HINT_CERTIFICATE_NOT_SENT, "no client certificate was sent", id="nginx-none"
        ),
        pytest.param(
            400,
            NGINX_NO_CERT.replace("<center>nginx</center>", "<center>nginx/1.22.1</center>"),
            HINT_CERTIFICATE_NOT_SENT,
            "no client certificate was sent",
            id="nginx-none-with-version",
        ),
        pytest.param(
            400, NGINX_CERT_ERROR, HINT_CERTIFICATE_NOT_VERIFIED, "could not verify", id="nginx-not-verified"
        ),
        pytest.param(
            401,
            '{"message": "No required TLS certificate was sent"}',
            HINT_CERTIFICATE_NOT_SENT,
            "no client certificate was sent",
            id="kong-none",
        ),
        pytest.param(
            401,
            '{"message": "TLS certificate failed verification"}',
            HINT_CERTIFICATE_NOT_VERIFIED,
            "could not verify",
            id="kong-not-verified",
        ),
        pytest.param(
            495,
            "<h1>SSL Certificate Error</h1>",
            HINT_CERTIFICATE_NOT_VERIFIED,
            "could not verify",
            id="495-page",
        ),
        pytest.param(
            496, "<h1>SSL Certificate Required</h1>", HINT_CERTIFICATE_NOT_SENT, "no client", id="496-page"
        ),
        pytest.param(
            400,
            "<html><body>Client certificate rejected</body></html>",
            HINT_INVALID_CLIENT_CERTIFICATE,
            "refused the client certificate",
            id="other-certificate-page",
        ),
        pytest.param(
            401,
            '{"message": "Invalid Client Certificate"}',
            HINT_INVALID_CLIENT_CERTIFICATE,
            "401 Invalid Client Certificate",
            id="the-banks-own-not-bound",
        ),
    ],
)
def test_gateway_certificate_pages_get_the_checklist_that_fits(status, body, hint, what):
    error = error_for_status(status, body, method="POST", path="/auth/token-v2")
    assert type(error) is InvalidClientCertificateError
    assert error.hint == hint
    assert what in error.message
    assert error.status_code == status


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            "<html><center>The plain HTTP request was sent to HTTPS port</center></html>", id="plain"
        ),
        pytest.param('{"error": "invalid_request"}', id="json"),
        pytest.param("x" * SCAN_LIMIT + "No required SSL certificate was sent", id="phrase-past-the-cap"),
    ],
)
def test_other_400_pages_are_not_certificate_refusals(body):
    assert gateway_certificate_refusal(400, body) is None
    assert type(error_for_status(400, body, method="GET", path="/x")) is ApiError


@pytest.mark.parametrize("status", [pytest.param(s, id=str(s)) for s in (200, 201, 204, 299)])
def test_2xx_is_no_error(status):
    assert error_for_status(status, "", method="GET", path="/") is None


def test_rate_limited_carries_retry_after_and_attempts():
    error = error_for_status(429, "", method="GET", path="/x", retry_after=7.0, retries=3)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 7.0
    assert "after 4 attempts" in error.message


@pytest.mark.parametrize(
    ("status", "retries", "said"),
    [
        pytest.param(502, 0, "answered 502 Bad Gateway (sent once, not retried)", id="502-once"),
        pytest.param(504, 1, "answered 504 Gateway Timeout after 2 attempts", id="504-twice"),
        pytest.param(503, 3, "answered 503 Service Unavailable after 4 attempts", id="503-four-times"),
        pytest.param(529, 2, "answered 529 Site is overloaded after 3 attempts", id="529-three-times"),
        pytest.param(429, 0, "answered 429 Too Many Requests (sent once, not retried)", id="429-once"),
    ],
)
def test_messages_say_how_many_attempts_were_made(status, retries, said):
    error = error_for_status(status, "", method="POST", path="/auth/token-v2", retries=retries)
    assert said in error.message
    assert "retried with backoff" not in str(error)


def test_message_names_the_call_and_the_phrase():
    error = error_for_status(401, '{"message": "Invalid Credentials"}', method="POST", path="/auth/token-v2")
    assert error.message == "POST /auth/token-v2 answered 401 Invalid Credentials."


# -- excerpts: short, single-line, never a secret ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        pytest.param(
            '{"access_token": "s3cr3t-token-value", "token_type": "Bearer"}',
            "s3cr3t-token-value",
            id="json-access-token",
        ),
        pytest.param('{"data": [{"client_secret": "hunter2hunter2"}]}', "hunter2hunter2", id="nested-secret"),
        pytest.param('{"Password": "pa55word!"}', "pa55word!", id="password-any-case"),
        pytest.param('{"refresh_token": {"value": "abcdefgh123"}}', "abcdefgh123", id="secret-object"),
        pytest.param('{"access_token": "cut-off-tok', "cut-off-tok", id="truncated-json"),
        pytest.param("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl", id="bearer-echoed"),
        pytest.param("client_secret=zzz111&grant_type=client_credentials", "zzz111", id="form-encoded"),
        pytest.param(
            "token is eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxIn0", id="bare-jwt"
        ),
        pytest.param(
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
            "MIIEvQIBADANBg",
            id="private-key",
        ),
    ],
)
def test_scrub_masks_secrets(body, secret):
    assert secret not in scrub(body)
    assert secret not in body_excerpt(body)


_SECRET_KEYS = st.sampled_from(
    ["access_token", "token", "client_secret", "password", "Authorization", "apiKey"]
)
_SECRETS = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=40)


@given(st.data())
def test_secrets_never_reach_an_excerpt_whatever_the_nesting(data):
    secret = data.draw(_SECRETS)
    value = {data.draw(_SECRET_KEYS): secret}
    for _ in range(data.draw(st.integers(0, 4))):
        value = data.draw(st.sampled_from([[value], {"data": value}, {"items": [1, value]}]))
    error = error_for_status(
        data.draw(st.sampled_from([400, 401, 500])), json.dumps(value), method="POST", path="/auth/token-v2"
    )
    assert secret not in error.body_excerpt
    assert secret not in str(error)


@given(st.text(max_size=2000))
def test_excerpt_is_capped_and_single_line(text):
    excerpt = body_excerpt(text)
    assert len(excerpt) <= EXCERPT_LIMIT
    assert "\n" not in excerpt


def test_html_excerpt_drops_tags():
    assert body_excerpt(NGINX_NO_CERT).startswith("400 No required SSL certificate was sent 400 Bad Request")


# -- on a requests.Response ---------------------------------------------------------------------------


def _response(status, body, *, content_type="application/json", headers=None, bearer=False):
    request = requests.Request("GET", "https://bank.example/v1/accounts/1/balance").prepare()
    if bearer:
        request.headers["Authorization"] = "Bearer abc"
    response = requests.Response()
    response.status_code = status
    response._content = body.encode() if isinstance(body, str) else body
    response.headers["Content-Type"] = content_type
    response.headers.update(headers or {})
    response.request = request
    response.url = request.url
    return response


def test_raise_for_bank_status_passes_2xx():
    raise_for_bank_status(_response(200, "{}"), method="GET", path="/accounts/1/balance")


def test_raise_for_bank_status_reads_retry_after_and_the_bearer():
    with pytest.raises(RateLimitedError) as caught:
        raise_for_bank_status(_response(429, "", headers={"Retry-After": "12"}), method="GET", path="/x")
    assert caught.value.retry_after == 12.0
    with pytest.raises(ApiError) as caught:
        raise_for_bank_status(_response(401, "{}", bearer=True), method="GET", path="/x")
    assert caught.value.hint == HINT_TOKEN_REFUSED


def test_the_retry_after_the_error_carries_is_a_date_read_against_the_answers_date():
    # The bank's clock an hour ahead of this machine's: its date means "in 90 s", as the trigger must wait.
    bank_now = time.time() + 3600
    headers = {
        "Retry-After": email.utils.formatdate(bank_now + 90, usegmt=True),
        "Date": email.utils.formatdate(bank_now, usegmt=True),
    }
    with pytest.raises(RateLimitedError) as caught:
        raise_for_bank_status(_response(429, "", headers=headers), method="GET", path="/x")
    assert caught.value.retry_after == 90.0


def test_raise_for_bank_status_reads_invalid_utf8():
    with pytest.raises(InvalidCredentialsError):
        raise_for_bank_status(_response(401, b"\xff\xfe Invalid Credentials \xff"), method="POST", path="/t")


def test_json_body_of_a_non_json_2xx_is_an_api_error():
    response = _response(200, "<html>maintenance page</html>", content_type="text/html")
    with pytest.raises(ApiError) as caught:
        json_body(response, method="GET", path="/accounts/1/balance")
    assert type(caught.value) is ApiError
    assert "not JSON" in caught.value.message
    assert "text/html" in caught.value.message
    assert caught.value.body_excerpt == "maintenance page"
    assert not isinstance(caught.value.__cause__, ApiError)


def test_json_body_decodes():
    assert json_body(_response(200, '{"available": "1.00"}'), method="GET", path="/x") == {
        "available": "1.00"
    }

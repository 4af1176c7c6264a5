"""Pagination styles: the request that follows a page, decided from its JSON and its answer (pure)."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_bankapi.client.endpoints import next_link_endpoint
from airflow_provider_bankapi.errors import ConfigurationError, NextLinkRefusedError
from airflow_provider_bankapi.pagination import (
    Cursor,
    LinkHeader,
    Links,
    NextParams,
    NextRequest,
    PageNumbers,
    pagination_style,
)

HOST = "bank.example:8443"
PREFIX = "/public/gw_banking/v1"
BASE = f"https://{HOST}{PREFIX}"
TOKEN = "/auth/token-v2"


def answer(link: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    if link is not None:
        response.headers["Link"] = link
    return response


def following(style, page, *, link=None, request=None):
    request = request or NextRequest("/tx", {"page-size": 10})
    return style.next_request(page, answer(link), request, base_url=BASE, token_path=TOKEN)


def test_links_follow_an_absolute_next_link_with_its_own_query():
    page = {"data": [1], "links": {"next": f"{BASE}/tx?page=2&page-size=10"}}

    assert following(Links(), page) == NextRequest("/tx", [("page", "2"), ("page-size", "10")])
    assert following(Links(), {"data": [1], "links": {"self": "x"}}) is None
    assert following(
        Links(next_path="paging.next"), {"paging": {"next": "/public/gw_banking/v1/tx?p=3"}}
    ) == (NextRequest("/tx", [("p", "3")]))


def test_a_link_header_names_the_next_page():
    link = f'<{BASE}/tx?page=2>; rel="next", <{BASE}/tx?page=9>; rel="last"'

    assert following(LinkHeader(), [1], link=link) == NextRequest("/tx", [("page", "2")])
    assert following(LinkHeader(), [1], link=f'<{BASE}/tx?page=9>; rel="last"') is None
    assert following(LinkHeader(), [1]) is None


def test_page_numbers_stop_at_total_pages_without_asking_for_one_more():
    style = PageNumbers(page_size=10)
    first = NextRequest("/tx", style.first_params({"x": 1}))
    assert first.params == {"x": 1, "page": 1, "page-size": 10}

    second = following(style, {"data": [1], "meta": {"totalPages": 2}}, request=first)
    assert second == NextRequest("/tx", {"x": 1, "page": 2, "page-size": 10})
    assert following(style, {"data": [1], "meta": {"totalPages": 2}}, request=second) is None


def test_page_numbers_without_a_total_stop_at_an_empty_page():
    style = PageNumbers(records_path="result")
    request = NextRequest("/tx", {"page": 4})

    assert following(style, {"result": [1]}, request=request) == NextRequest("/tx", {"page": 5})
    assert following(style, {"result": []}, request=request) is None


def test_cursor_and_functions_add_to_the_params():
    assert following(Cursor(), {"next_cursor": "c2"}) == NextRequest("/tx", {"page-size": 10, "cursor": "c2"})
    assert following(Cursor(), {"next_cursor": None}) is None
    assert following(NextParams(lambda page: {"offset": 10}), {}) == NextRequest(
        "/tx", {"page-size": 10, "offset": 10}
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("cursor", Cursor(), id="cursor"),
        pytest.param("links", Links(), id="links"),
        pytest.param("LINK_HEADER", LinkHeader(), id="link_header-any-case"),
        pytest.param("page", PageNumbers(records_path="data"), id="page-knows-the-records"),
        pytest.param(Links(next_path="n"), Links(next_path="n"), id="a-value"),
    ],
)
def test_pagination_styles_by_name_or_value(value, expected):
    assert pagination_style(value, records_path="data") == expected


@pytest.mark.parametrize("value", [pytest.param("offset", id="unknown-name"), pytest.param(3, id="a-number")])
def test_an_unknown_pagination_names_its_field(value):
    with pytest.raises(ConfigurationError) as caught:
        pagination_style(value)
    assert caught.value.field == "pagination"


@pytest.mark.parametrize(
    ("link", "host"),
    [
        pytest.param("https://evil.example/public/gw_banking/v1/tx?page=2", "evil.example", id="other-host"),
        pytest.param(f"https://bank.example:9443{PREFIX}/tx", "bank.example:9443", id="other-port"),
        pytest.param(f"http://{HOST}{PREFIX}/tx", HOST, id="plain-http"),
        pytest.param(f"https://{HOST}/public/other/tx", HOST, id="outside-the-prefix"),
        pytest.param(f"https://{HOST}{PREFIX}0/tx", HOST, id="prefix-lookalike"),
        pytest.param(f"https://u:p@{HOST}{PREFIX}/tx", HOST, id="user-info"),
        pytest.param("//evil.example/public/gw_banking/v1/tx", "evil.example", id="scheme-relative"),
        pytest.param("../../other/tx", HOST, id="relative-escaping-the-prefix"),
    ],
)
def test_a_next_link_outside_the_base_url_is_refused_naming_its_host_only(link, host):
    with pytest.raises(NextLinkRefusedError) as caught:
        next_link_endpoint(BASE, link, token_endpoint=TOKEN)

    assert caught.value.link_host == host
    assert host in caught.value.message
    assert "?" not in caught.value.message  # never the query, which could hold a token


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        pytest.param(f"{BASE}/tx?page=2", ("/tx", [("page", "2")]), id="absolute"),
        pytest.param(f"HTTPS://BANK.EXAMPLE:8443{PREFIX}/tx", ("/tx", []), id="case-of-the-origin"),
        pytest.param("/public/gw_banking/v1/a/b?x=", ("/a/b", [("x", "")]), id="absolute-path"),
        pytest.param("tx?page=3#frag", ("/tx", [("page", "3")]), id="relative-to-the-base"),
    ],
)
def test_a_next_link_under_the_base_url_becomes_an_endpoint_and_its_query(link, expected):
    assert next_link_endpoint(BASE, link, token_endpoint=TOKEN) == expected


def test_a_next_link_onto_the_token_endpoint_is_refused():
    with pytest.raises(ConfigurationError, match="token endpoint"):
        next_link_endpoint(BASE, f"{BASE}/auth/token-v2", token_endpoint=TOKEN)

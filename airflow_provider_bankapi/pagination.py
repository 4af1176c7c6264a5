"""How a resource pages, as a small value: which request follows a page, or none.

Each style answers one question from the page's JSON and its HTTP answer: what to ask for next.

- :class:`Cursor`: ``{"next_cursor": "..."}`` in the body means ask again with ``cursor=...``;
- :class:`Links`: a next link in the body (``{"links": {"next": "https://..."}}``, Open Finance Brasil);
- :class:`LinkHeader`: an RFC 8288 ``Link: <...>; rel="next"`` header;
- :class:`PageNumbers`: ``page=1, 2, ...`` until ``meta.totalPages`` or an empty page (Open Finance
  Brasil's ``page``/``page-size``);
- :class:`NextParams`: a function of the page giving the parameters to add, or None on the last page.

A link (body or header) is followed only when it stays under the Base URL's origin and path prefix
(``client/endpoints.py``); the refusal comes before any request to it. Pure: no I/O, standard library
only, and no import of the client layer until a link is followed, so that DAG files can build these
values while they are parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_bankapi.documents import at_path, records_of
from airflow_provider_bankapi.errors import HINT_PAGINATION, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import requests

STYLES = ("cursor", "links", "link_header", "page")


@dataclass(frozen=True)
class NextRequest:
    """The request that follows a page: GET ``endpoint`` (under the Base URL) with ``params``."""

    endpoint: str
    params: Mapping[str, Any] | list[tuple[str, str]]


class Paginator(Protocol):
    """A pagination style: the request that follows ``page`` (None after the last page)."""

    def next_request(
        self, page: Any, response: requests.Response, request: NextRequest, *, base_url: str, token_path: str
    ) -> NextRequest | None: ...


def _params(request: NextRequest) -> dict[str, Any]:
    return dict(request.params)


@dataclass(frozen=True)
class NextParams:
    """A function of a page's JSON giving the params to add for the next page (None on the last)."""

    next_page: Callable[[Any], Mapping[str, Any] | None]

    def next_request(
        self, page: Any, response: requests.Response, request: NextRequest, *, base_url: str, token_path: str
    ) -> NextRequest | None:
        following = self.next_page(page)
        return NextRequest(request.endpoint, {**_params(request), **following}) if following else None


@dataclass(frozen=True)
class Cursor:
    """The body's ``cursor_path`` (dotted) holds the next page's cursor, sent back as ``param``.

    :param cursor_path: where the cursor is, e.g. ``"next_cursor"`` or ``"meta.next"``.
    :param param: the query parameter that carries it.
    """

    cursor_path: str = "next_cursor"
    param: str = "cursor"

    def next_request(
        self, page: Any, response: requests.Response, request: NextRequest, *, base_url: str, token_path: str
    ) -> NextRequest | None:
        cursor = at_path(page, self.cursor_path)
        return NextRequest(request.endpoint, {**_params(request), self.param: cursor}) if cursor else None


def _follow(link: Any, base_url: str, token_path: str) -> NextRequest | None:
    if not link or not isinstance(link, str):
        return None
    from airflow_provider_bankapi.client.endpoints import next_link_endpoint  # at run time, not at parsing

    endpoint, query = next_link_endpoint(base_url, link, token_endpoint=token_path)
    return NextRequest(endpoint, query)  # the link is the whole next request: its own query, nothing added


@dataclass(frozen=True)
class Links:
    """The body's ``next_path`` (dotted) holds the next page's URL (absolute, or relative to the Base URL).

    :param next_path: default ``"links.next"`` (Open Finance Brasil).
    """

    next_path: str = "links.next"

    def next_request(
        self, page: Any, response: requests.Response, request: NextRequest, *, base_url: str, token_path: str
    ) -> NextRequest | None:
        return _follow(at_path(page, self.next_path), base_url, token_path)


@dataclass(frozen=True)
class LinkHeader:
    """The answer's RFC 8288 ``Link`` header names the next page (``rel="next"`` by default)."""

    rel: str = "next"

    def next_request(
        self, page: Any, response: requests.Response, request: NextRequest, *, base_url: str, token_path: str
    ) -> NextRequest | None:
        return _follow(response.links.get(self.rel, {}).get("url"), base_url, token_path)


@dataclass(frozen=True)
class PageNumbers:
    """Numbered pages: ``page_param`` counts from ``first_page`` until ``total_pages_path`` says the last
    one was read, or a page has no records.

    :param page_param: the page number's query parameter (Open Finance Brasil: ``page``).
    :param size_param: the page size's query parameter (``page-size``), sent when ``page_size`` is given.
    :param page_size: records per page to ask for; None sends no size (the bank's default).
    :param total_pages_path: where the body says how many pages there are (``meta.totalPages``).
    :param first_page: the number of the first page.
    :param records_path: where a page's records are (see ``documents.records_of``), to see an empty page.
    """

    page_param: str = "page"
    size_param: str = "page-size"
    page_size: int | None = None
    total_pages_path: str = "meta.totalPages"
    first_page: int = 1
    records_path: str | None = None

    def first_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The first request's params: the caller's, the first page number and the size."""
        first = {**params}
        first.setdefault(self.page_param, self.first_page)
        if self.page_size is not None:
            first.setdefault(self.size_param, self.page_size)
        return first

    def next_request(
        self, page: Any, response: requests.Response, request: NextRequest, *, base_url: str, token_path: str
    ) -> NextRequest | None:
        params = _params(request)
        number = int(params.get(self.page_param, self.first_page))
        total = at_path(page, self.total_pages_path)
        if isinstance(total, int) and not isinstance(total, bool):
            if number - self.first_page + 1 >= total:
                return None
        if not records_of(page, self.records_path):
            return None
        return NextRequest(request.endpoint, {**params, self.page_param: number + 1})


def pagination_style(value: Any, *, records_path: str | None = None) -> Paginator:
    """The paginator a caller means: a style's name, a paginator value, or a function page -> params.

    :param value: ``"cursor"``, ``"links"``, ``"link_header"``, ``"page"``, a paginator, or a callable.
    :param records_path: where the records are, for ``"page"`` (an empty page is the last).
    :raises ConfigurationError: naming the ``pagination`` field.
    """
    if isinstance(value, str):
        style = value.strip().lower()
        styles: dict[str, Paginator] = {
            "cursor": Cursor(),
            "links": Links(),
            "link_header": LinkHeader(),
            "page": PageNumbers(records_path=records_path),
        }
        if style not in styles:
            raise ConfigurationError(
                f"pagination must be one of {', '.join(STYLES)}; got {value!r}.",
                field="pagination",
                hint=HINT_PAGINATION,
            )
        return styles[style]
    if hasattr(value, "next_request"):
        return value  # type: ignore[no-any-return]
    if callable(value):
        return NextParams(value)
    raise ConfigurationError(
        f"pagination must be a style's name, a paginator or a function; got {type(value).__name__}.",
        field="pagination",
        hint=HINT_PAGINATION,
    )

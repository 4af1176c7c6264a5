"""BankingApiHook: an Airflow Connection of type ``bankapi`` turned into a BankingApiClient.

The hook is thin on purpose: it maps the connection's fields to ``ClientSettings``, adds the Airflow
Variable store to the token stores of ``cache_scope=cluster``, registers every secret with Airflow's
masker, and delegates the rest to the client.
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.serde import allow_class

from airflow_provider_bankapi.airflow_version import require_supported_airflow
from airflow_provider_bankapi.client.fields import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_WORKERS,
    EXTRA_FIELDS,
    EXTRA_KEYS,
    FIELD,
    NO_INTERACTION_ID,
)
from airflow_provider_bankapi.documents import BankDecimal
from airflow_provider_bankapi.errors import BankingApiError, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import requests
    from airflow.sdk import Connection

    from airflow_provider_bankapi.client.api import BankingApiClient
    from airflow_provider_bankapi.client.batch import BatchResult
    from airflow_provider_bankapi.client.identity.identity import CertificateDescription
    from airflow_provider_bankapi.client.settings import ClientSettings
    from airflow_provider_bankapi.client.tokens.values import AccessToken

require_supported_airflow()

# The bank's numbers reach XCom as BankDecimal, which keeps their digits there (Airflow's own Decimal
# serializer goes through float); every process that imports the provider may read them back.
allow_class(BankDecimal)

# Airflow 2's form saved extras as ``extra__<conn_type>__<field>``; accept that spelling too.
_LEGACY_PREFIX = "extra__bankapi__"


def connection_extras(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The connection's extras by their plain key; an unknown key is an error, never an HTTP header."""
    extras: dict[str, Any] = {}
    for raw_key, value in extra.items():
        key = raw_key.removeprefix(_LEGACY_PREFIX)
        if key not in EXTRA_KEYS:
            raise ConfigurationError(
                f"Unknown extra field {key!r} in the connection. "
                f"Valid fields: {', '.join(sorted(EXTRA_KEYS))}.",
                field=key,
                hint="Remove it or fix its spelling; this provider never turns extras into HTTP headers.",
            )
        extras[key] = value
    return extras


# The extras read here; the identity's are read by IdentityMaterial.
_SETTING_FIELDS = tuple(field for field in EXTRA_FIELDS if not field.identity)


def base_url_with_port(host: str | None, port: int | str | None = None) -> str:
    """The Base URL completed by the connection's Port.

    The Port fills in a Base URL that names none and must agree with one that does; empty or 0 means
    the Base URL's own. It is a field of the form because Airflow's Test button only reuses a saved
    connection's secrets when the port it sends, 0 for an empty one in Airflow 3.3.2, matches the
    stored port; a saved Port makes the two agree whatever Airflow version sends.
    """
    url = (host or "").strip()
    if port is None or port == "" or port == 0:
        return url
    try:
        number = int(str(port))
    except ValueError:
        number = 0
    if not 0 < number < 65536:
        raise ConfigurationError(f"The Port must be a number from 1 to 65535; got {port!r}.", field="port")
    parts = urlsplit(url)
    try:
        named = parts.port
    except ValueError:
        raise ConfigurationError("The Base URL has a malformed port.", field="host") from None
    if named is None:
        if number == 443 or not parts.hostname:
            # https's own port stays implicit: the URL, and the token cache key made from it, do not change.
            return url
        return parts._replace(netloc=f"{parts.netloc}:{number}").geturl()
    if named != number:
        raise ConfigurationError(
            f"The Port ({number}) differs from the port in the Base URL ({named}).",
            field="port",
            hint="Make them the same, or remove the port from the Base URL.",
        )
    return url


def settings_from_connection(
    host: str | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    port: int | str | None = None,
) -> tuple[ClientSettings, str]:
    """``ClientSettings`` and the cache scope from a connection's fields.

    Each field is read, and its size, type and range checked, once, by its row of the table of connection
    fields; an error names the field as the connection names it.
    """
    # Here, not at the top: parsing a DAG file that names the hook never loads the client layer.
    from airflow_provider_bankapi.client.identity.material import IdentityMaterial
    from airflow_provider_bankapi.client.settings import ClientSettings, TransportSettings

    host, login, password = (
        FIELD["host"].read(host),
        FIELD["login"].read(login),
        FIELD["password"].read(password),
    )
    extras = connection_extras(extra)
    values = {}
    for field in _SETTING_FIELDS:
        values[field.key] = field.read(extras.get(field.key))
    read_timeout = values["timeout"]
    header = values["interaction_id_header"].strip()
    transport = TransportSettings(
        connect_timeout=min(DEFAULT_CONNECT_TIMEOUT, read_timeout),
        read_timeout=read_timeout,
        max_retries=values["max_retries"],
        max_response_bytes=values["max_response_bytes"],
        proxy=values["proxy"],
        # "none" sends none; empty is unset, as for every field: the form saves an untouched field as an empty
        # string, which must not silently turn the ids off.
        interaction_id_header="" if header.lower() == NO_INTERACTION_ID else header,
    )
    settings = ClientSettings(
        base_url=base_url_with_port(host, port),
        client_id=(login or "").strip(),
        client_secret=password or "",
        identity=IdentityMaterial.from_extra(extras),
        auth_endpoint=values["auth_endpoint"],
        refresh_margin=values["refresh_margin"],
        transport=transport,
    )
    return settings, values["cache_scope"]


class BankingApiHook(BaseHook):
    """Talks to the Banking API over mutual TLS with a token shared across task runs.

    :param bankapi_conn_id: the id of a connection of type ``bankapi``.
    :param max_response_bytes: the largest answer of one call, in place of the connection's (for a
        legitimately large resource); None keeps the connection's.
    """

    conn_name_attr = "bankapi_conn_id"
    default_conn_name = "bankapi_default"
    conn_type = "bankapi"
    hook_name = "Banking API"

    def __init__(
        self,
        bankapi_conn_id: str = default_conn_name,
        *,
        max_response_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bankapi_conn_id = bankapi_conn_id
        self.max_response_bytes = max_response_bytes

    @cached_property
    def client(self) -> BankingApiClient:
        """The client, built once on first use (no I/O in ``__init__``: DAG parsing makes hooks too)."""
        return client_from_connection(
            self.get_connection(self.bankapi_conn_id), max_response_bytes=self.max_response_bytes
        )

    @property
    def base_url(self) -> str:
        """The connection's Base URL, as the client calls it (read from the connection on first use)."""
        return self.client.settings.base_url

    def get_conn(self) -> requests.Session:
        """A requests Session with the mTLS identity and the Bearer token on every request, renewed once
        after a 401 as for the hook's own calls.

        URLs must be absolute and under the Base URL (``hook.url(path)`` makes one); any
        other URL is refused before a connection is made, so the token and the client certificate only
        ever go to the bank.
        """
        return self.client.session()

    def get_token(self) -> AccessToken:
        return self.client.get_token()

    def get_balance(self, account_id: str | int) -> Any:
        return self.client.get_balance(account_id)

    def get_balances(
        self, account_ids: Sequence[str | int], *, max_workers: int = DEFAULT_MAX_WORKERS
    ) -> BatchResult:
        return self.client.get_balances(account_ids, max_workers=max_workers)

    def iter_balances(
        self, account_ids: Sequence[str | int], *, max_workers: int = DEFAULT_MAX_WORKERS
    ) -> Iterator[tuple[str, Any]]:
        return self.client.iter_balances(account_ids, max_workers=max_workers)

    def request(self, method: str, endpoint: str, **kwargs: Any) -> requests.Response:
        return self.client.request(method, endpoint, **kwargs)

    def url(self, endpoint: str) -> str:
        """The absolute URL of ``endpoint`` under the Base URL, for :meth:`get_conn` Sessions; a path outside
        the Base URL or onto the token endpoint is refused (a ``ConfigurationError``) before any call.
        """
        return self.client.settings.url(endpoint)

    def json_of(self, response: requests.Response, *, method: str, path: str) -> Any:
        """The JSON of a 2xx answer of :meth:`request`, numbers exact; a body that is not JSON is an ApiError
        carrying the request's interaction id.
        """
        return self.client.json_of(response, method=method, path=path)

    def get_json(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.client.get_json(endpoint, params)

    def paginate(
        self,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        next_page: Callable[[Any], Mapping[str, Any] | None] | None = None,
        pagination: Any = None,
        max_pages: int = 10_000,
    ) -> Iterator[Any]:
        """Each page's JSON, one GET per page.

        :param pagination: ``"cursor"`` (default), ``"links"``, ``"link_header"``, ``"page"``, a value of
            ``airflow_provider_bankapi.pagination`` or a function page -> params of the next page.
        :param next_page: the function form, as before ``pagination`` existed.
        :param max_pages: more pages than this fails (a resource that never says "last").
        """
        return self.client.paginate(
            endpoint, params=params, pagination=pagination or next_page or "cursor", max_pages=max_pages
        )

    def records(
        self,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        pagination: Any = "cursor",
        records_path: str | None = None,
        max_pages: int = 10_000,
    ) -> Iterator[Any]:
        """Every record of every page, page after page (see :meth:`paginate`).

        :param records_path: where a page's records are, a dotted path such as ``"data"``: the list there,
            or the object there as one record. Default: a page that is a list, else its ``"items"`` or
            ``"data"``, else the page itself.
        """
        from airflow_provider_bankapi.documents import records_of
        from airflow_provider_bankapi.pagination import pagination_style

        style = pagination_style(pagination, records_path=records_path)
        for page in self.client.paginate(endpoint, params=params, pagination=style, max_pages=max_pages):
            yield from records_of(page, records_path)

    def describe_certificate(self) -> CertificateDescription:
        return self.client.describe_certificate()

    def test_connection(self) -> tuple[bool, str]:
        """The Airflow UI's and CLI's connection test: identity -> TLS handshake -> token."""
        try:
            report = self.client.probe()
        except BankingApiError as exc:  # the connection's fields themselves are wrong
            return False, f"{self._named_for_the_user()}: {exc}"
        return report.ok, str(report)

    def _named_for_the_user(self) -> str:
        """How a message names the connection: by its id, unless the id is the random one Airflow's Test
        button gives the copy it tests (eight letters or digits, defined for the test as an
        ``AIRFLOW_CONN_`` variable), which the user never saw.
        """
        conn_id = self.bankapi_conn_id
        if len(conn_id) == 8 and conn_id.isalnum() and f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ:
            return "This connection"
        return f"Connection {conn_id!r}"


def client_from_connection(
    connection: Connection, *, max_response_bytes: int | None = None
) -> BankingApiClient:
    """The client of a ``bankapi`` connection, every secret of it registered with Airflow's masker.

    :param max_response_bytes: the cap of an answer's body, instead of the transport's default.
    """
    from airflow_provider_bankapi.client.api import BankingApiClient
    from airflow_provider_bankapi.client.tokens.cache import stores_for
    from airflow_provider_bankapi.hooks.variable_store import cluster_store

    settings, scope = settings_from_connection(
        connection.host, connection.login, connection.password, connection.extra_dejson, connection.port
    )
    if max_response_bytes is not None:
        transport = replace(settings.transport, max_response_bytes=max_response_bytes)
        settings = replace(settings, transport=transport)
    # Airflow masks the connection's password itself; masked here too, as every other secret, so that no
    # path to the connection (a secrets backend, an environment variable) is left to that promise.
    for secret in (settings.client_secret, *settings.secrets(key_material=True)):
        _mask(secret)
    # Every token the client's cache hands out reaches the masker, including one another task left in
    # a file or a Variable; the cluster store exists only inside a task.
    stores = stores_for(scope, cluster=cluster_store)
    return BankingApiClient(settings, token_stores=stores, on_secret=_mask)


def _mask(secret: object) -> None:
    if not isinstance(secret, str) or not secret:
        return  # paths given as PathLike, and unset fields, are not secrets
    from airflow.sdk import conf
    from airflow.sdk.log import mask_secret

    if len(secret) < conf.getint("logging", "min_length_masked_secret", fallback=5):
        return  # Airflow's masker skips it anyway, with a warning in the task's log

    mask_secret(secret)
    if "\n" in secret:
        # Key material pasted as text: a JSON-escaped copy (a PEM in a JSON log line) and its base64 body on
        # one line (the DER as base64) must not surface either. Armour lines are public and stay. Not each
        # line apart: Airflow's masker recompiles one regex of every pattern at each addition, so the ~50
        # lines of an RSA-4096 key cost seconds per task, and the provider never puts key text in a message.
        mask_secret(secret.replace("\n", "\\n"))
        body = "".join(line.strip() for line in secret.splitlines() if not line.startswith("-----"))
        if len(body) >= 16:
            mask_secret(body)

"""A hostile or careless bank: echoes of the secret in any shape, bodies nested hundreds deep, a Retry-After
of thousands of digits, one account failing in a way nobody expected. Real HTTPS on loopback, signed by the
sandbox's CA; the client is the real one.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from loopback_https import BASE_PATH, TOKEN, Answer, LoopbackHttps

from airflow_provider_bankapi.client.api import BankingApiClient
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.settings import ClientSettings, TransportSettings
from airflow_provider_bankapi.errors import ApiError, BankingApiError, ServerError
from bankapi_sandbox import running

# Characters that every encoding of an echo writes differently: a slash, a plus, a space, a quote, an
# ampersand, angle brackets and a non-ASCII letter; and two runs that any spelling keeps as they are.
SECRET = 'Zq9/x+T k"é&<Xy7>'
PLAIN_RUNS = ("Zq9", "Xy7")
CLIENT_ID = "client-1"


def spellings(value: str) -> list[str]:
    """The value as an echo may write it: as it is, URL-encoded, JSON-escaped and XML-escaped."""
    return [value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1], html.escape(value)]


def request_of(body: bytes) -> dict[str, str]:
    return json.loads(body)


# The token endpoint's echo of the request it refused, in the shapes seen from real gateways.
ECHOES = [
    pytest.param(
        lambda raw: Answer(400, body={"error": "invalid_request", "request": request_of(raw)}),
        id="json-member",
    ),
    pytest.param(
        lambda raw: Answer(
            400, body={"error": "invalid_request", "error_description": f"cannot use {raw.decode()}"}
        ),
        id="json-inside-a-string",
    ),
    pytest.param(
        lambda raw: Answer(
            400, body={"errors": [{"field": "client_secret", "value": request_of(raw)["client_secret"]}]}
        ),
        id="field-value-list",
    ),
    pytest.param(
        lambda raw: Answer(
            400, body=f"error: invalid_request\nclient_secret: {request_of(raw)['client_secret']}\n".encode()
        ),
        id="yaml",
    ),
    pytest.param(
        lambda raw: Answer(
            400,
            body=f"<error><secret>{html.escape(request_of(raw)['client_secret'])}</secret></error>".encode(),
        ),
        id="xml",
    ),
    pytest.param(lambda raw: Answer(400, body=f"bad request {request_of(raw)!r}".encode()), id="repr"),
    pytest.param(
        lambda raw: Answer(400, body=f"refused /token?request={quote(raw.decode(), safe='')}".encode()),
        id="url-encoded",
    ),
    pytest.param(
        lambda raw: Answer(
            400, body=f"The secret {request_of(raw)['client_secret']} is not {CLIENT_ID}'s".encode()
        ),
        id="plain-text",
    ),
]


@pytest.fixture(scope="module")
def sandbox():
    with running() as handle:
        yield handle


def make_client(sandbox, base_url, **settings):
    return BankingApiClient(
        ClientSettings(
            base_url=base_url,
            client_id=CLIENT_ID,
            client_secret=settings.pop("client_secret", SECRET),
            identity=settings.pop("identity", None)
            or IdentityMaterial(
                client_cert=Path(sandbox.client_cert),
                client_private_key=Path(sandbox.client_key),
                ca_cert=Path(sandbox.ca_cert),
            ),
            transport=TransportSettings(connect_timeout=5, read_timeout=5, max_retries=0),
        ),
        token_stores=[],
    )


def bank(sandbox, tmp_path, answer):
    """A bank whose answers ``answer(path under the Base URL, request body)`` decides."""
    return LoopbackHttps(sandbox, tmp_path, lambda seen: answer(seen.path[len(BASE_PATH) :], seen.body))


def shown(error: BaseException) -> str:
    """Everything an error shows: its message, excerpt, hint, str and repr."""
    return " ".join(
        (str(error), repr(error), error.message, getattr(error, "body_excerpt", ""), error.hint)
    )


@pytest.mark.parametrize("echo", ECHOES)
def test_a_token_endpoint_echoing_the_secret_in_any_shape_never_puts_it_in_the_error(sandbox, tmp_path, echo):
    with (
        bank(sandbox, tmp_path, lambda path, raw: echo(raw)) as server,
        make_client(sandbox, server.base_url) as client,
    ):
        with pytest.raises(ApiError) as caught:
            client.get_token()

    assert server.seen[0].body
    assert SECRET in request_of(server.seen[0].body).values()
    assert caught.value.status_code == 400
    assert caught.value.body_excerpt  # the excerpt is kept, only the secret goes
    for spelling in (*spellings(SECRET), *PLAIN_RUNS):  # in no spelling, not even an escaped escape
        assert spelling not in shown(caught.value), spelling


def test_a_balance_echoing_the_token_anywhere_never_puts_it_in_the_error(sandbox, tmp_path):
    def answer(path, raw):
        if path == "/auth/token-v2":
            return TOKEN
        return Answer(400, body=f"<request><auth>{TOKEN.body['access_token']}</auth></request>".encode())

    with bank(sandbox, tmp_path, answer) as server, make_client(sandbox, server.base_url) as client:
        with pytest.raises(ApiError) as caught:
            client.get_balance("1")

    assert TOKEN.body["access_token"] not in shown(caught.value)
    assert "<request>" not in caught.value.body_excerpt
    assert "***" in caught.value.body_excerpt


def test_the_client_knows_its_passwords_and_every_token_it_hands_out(sandbox, tmp_path):
    pfx = sandbox.connection_pfx["extra"]
    identity = IdentityMaterial(
        client_pfx_secret=Path(pfx["client_pfx_secret"]),
        client_pfx_password=pfx["client_pfx_password"],
        ca_cert=Path(sandbox.ca_cert),
    )
    with (
        bank(sandbox, tmp_path, lambda path, raw: TOKEN) as server,
        make_client(sandbox, server.base_url, identity=identity) as client,
    ):
        token = client.get_token().access_token
        known = [SECRET, token, quote(SECRET), pfx["client_pfx_password"]]

        assert client.redactor(" ".join(known)) == " ".join(["***"] * len(known))
        assert SECRET not in repr(client.redactor)


NESTED_500 = json.loads("[" * 500 + '"Invalid Credentials"' + "]" * 500)  # about 1 KB on the wire


def test_a_batch_keeps_its_balances_when_one_account_answers_a_hostile_503(sandbox, tmp_path):
    def answer(path, raw):
        if path == "/auth/token-v2":
            return TOKEN
        if path == "/accounts/2/balance":
            return Answer(503, {"Retry-After": "9" * 5000}, NESTED_500)
        return Answer(200, body={"available": "1.00"})

    with bank(sandbox, tmp_path, answer) as server, make_client(sandbox, server.base_url) as client:
        batch = client.get_balances(["1", "2", "3"])

    assert batch.succeeded == {"1": {"available": "1.00"}, "3": {"available": "1.00"}}
    assert isinstance(batch.failed["2"], ServerError)
    assert batch.failed["2"].transient


def test_a_batch_keeps_its_balances_whatever_one_account_raises(sandbox, tmp_path, monkeypatch):
    with bank(
        sandbox, tmp_path, lambda path, raw: TOKEN if "auth" in path else Answer(200, body={})
    ) as server:
        client = make_client(sandbox, server.base_url)
        fetch = client.get_balance

        def get_balance(account_id):
            if account_id == "2":  # what no one planned for, holding the secret in its text
                raise RuntimeError(f"unplanned failure near {SECRET}\x1b[2K")
            return fetch(account_id)

        monkeypatch.setattr(client, "get_balance", get_balance)
        with client:
            batch = client.get_balances(["1", "2", "3"])

    assert set(batch.succeeded) == {"1", "3"}
    failure = batch.failed["2"]
    assert type(failure) is BankingApiError
    assert isinstance(failure.__cause__, RuntimeError)
    assert "RuntimeError" in failure.message
    assert "/accounts/2/balance" in failure.message
    assert not any(run in shown(failure) for run in PLAIN_RUNS)
    assert "\x1b" not in failure.message
    assert "\\x1b" in failure.message

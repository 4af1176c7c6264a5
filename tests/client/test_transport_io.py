"""The transport against the sandbox bank over real mutual TLS: TLS ownership, reuse, retries, statuses."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import socketserver
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from airflow_provider_bankapi.client.identity.identity import load_identity
from airflow_provider_bankapi.client.identity.material import IdentityMaterial
from airflow_provider_bankapi.client.settings import TransportSettings
from airflow_provider_bankapi.client.transport.adapter import make_session
from airflow_provider_bankapi.client.transport.answers import raise_for_bank_status
from airflow_provider_bankapi.client.transport.failures import map_transport_error
from airflow_provider_bankapi.errors import (
    ApiError,
    ConfigurationError,
    ConnectionFailedError,
    ForbiddenError,
    InvalidClientCertificateError,
    InvalidCredentialsError,
    RateLimitedError,
    ServerError,
)
from bankapi_sandbox import running

# Tiny backoff so retried tests stay fast; Retry-After values from the sandbox are set to 0.
FAST = TransportSettings(connect_timeout=5, read_timeout=5, backoff_base=0.001, backoff_max=0.01)
BALANCE = "/accounts/123/balance"
TOKEN = "/auth/token-v2"


@pytest.fixture(scope="module")
def sandbox():
    with running() as handle:
        yield handle


@pytest.fixture
def bank(sandbox):
    sandbox.reset()
    yield sandbox
    sandbox.core.set_allowed_ips(sandbox.client_id, ["127.0.0.1", "::1"])


def client_context(bank, certificate=None, key=None):
    """The context of a real ClientIdentity (TLS >= 1.2, the sandbox CA only, the client certificate)."""
    material = IdentityMaterial(
        client_cert=Path(certificate or bank.client_cert),
        client_private_key=Path(key or bank.client_key),
        ca_cert=Path(bank.ca_cert),
    )
    return load_identity(material).ssl_context()


@pytest.fixture
def context(bank):
    return client_context(bank)


@pytest.fixture
def session(context):
    with make_session(context, FAST) as session:
        yield session


def credentials(bank, **overrides):
    body = {
        "client_id": bank.client_id,
        "client_secret": bank.connection["password"],
        "grant_type": "client_credentials",
    }
    return {**body, **overrides}


def fetch_token(session, bank):
    response = session.post(bank.base_url + TOKEN, json=credentials(bank))
    raise_for_bank_status(response, method="POST", path=TOKEN)
    return response.json()["access_token"]


@pytest.fixture
def bearer(session, bank):
    return {"Authorization": f"Bearer {fetch_token(session, bank)}"}


def retries_of(response):
    return len(response.raw.retries.history)


# -- the adapter owns TLS -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [pytest.param("pem", id="pem"), pytest.param("pfx", id="pfx")])
def test_trust_store_holds_only_the_configured_ca_after_many_requests(bank, monkeypatch, variant):
    extra = (bank.connection if variant == "pem" else bank.connection_pfx)["extra"]
    context = load_identity(IdentityMaterial.from_extra(extra)).ssl_context()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    trusted = context.get_ca_certs()
    assert len(trusted) == 1
    with make_session(context, FAST) as session:
        bearer = {"Authorization": f"Bearer {fetch_token(session, bank)}"}
        for _ in range(200):
            assert session.get(bank.base_url + BALANCE, headers=bearer, verify=True).status_code == 200
    assert context.get_ca_certs() == trusted
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_the_trap_is_real_with_a_naive_adapter(bank, context):
    """Control: an adapter that only passes ssl_context= lets requests grow the trust store."""

    class NaiveAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, ssl_context=context, **kwargs)

    with requests.Session() as naive:
        naive.mount("https://", NaiveAdapter())
        naive.get(bank.base_url + BALANCE, timeout=5)
    assert len(context.get_ca_certs()) > 1


def test_one_tls_connection_for_200_sequential_requests(session, bank, bearer):
    # The counters were reset before the token call (fixture), which opened the connection.
    for _ in range(200):
        session.get(bank.base_url + BALANCE, headers=bearer).raise_for_status()
    counters = bank.counters()
    assert counters["api_requests"] == 200
    assert counters["tls_connections"] == 1


def test_environment_changes_nothing(bank, context, monkeypatch):
    # A CA bundle without the sandbox CA and a proxy that does not exist: both must be ignored.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    with make_session(context, FAST) as session:
        assert fetch_token(session, bank)
    assert len(context.get_ca_certs()) == 1


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"verify": False}, id="verify-false"),
        pytest.param({"verify": "/etc/ssl/certs/ca-certificates.crt"}, id="verify-bundle"),
        pytest.param({"cert": ("client.crt", "client.key")}, id="cert-pair"),
        pytest.param({"cert": "client.pem"}, id="cert-file"),
    ],
)
def test_conflicting_tls_options_are_refused(session, bank, context, options):
    with pytest.raises(ConfigurationError) as caught:
        session.get(bank.base_url + BALANCE, **options)
    assert "conflicts with the connection's TLS identity" in caught.value.message
    assert "client.key" not in str(caught.value)
    assert len(context.get_ca_certs()) == 1


def test_session_level_verify_is_refused_too(session, bank):
    session.verify = False
    with pytest.raises(ConfigurationError):
        session.get(bank.base_url + BALANCE)


def test_plain_http_is_refused(session, bank):
    with pytest.raises(ConfigurationError) as caught:
        session.get(bank.base_url.replace("https://", "http://") + BALANCE)
    assert caught.value.field == "host"
    assert bank.counters()["api_requests"] == 0


def test_pool_is_keyed_on_the_context_and_gets_no_tls_paths(session, bank, context):
    session.get(bank.base_url + BALANCE)
    manager = session.get_adapter(bank.base_url).poolmanager
    keys = list(manager.pools.keys())
    assert [key.key_ssl_context for key in keys] == [context]
    pool = manager.pools[keys[0]]
    assert (pool.ca_certs, pool.ca_cert_dir, pool.cert_file, pool.key_file, pool.cert_reqs) == (None,) * 5


def test_default_timeouts_apply_to_every_request(bank, context):
    bank.inject_fault(BALANCE, "hang")
    settings = TransportSettings(connect_timeout=5, read_timeout=0.3, max_retries=0)
    with make_session(context, settings) as session, pytest.raises(requests.RequestException) as caught:
        session.get(bank.base_url + BALANCE)  # no timeout= given
    error = map_transport_error(caught.value, method="GET", path=BALANCE)
    assert isinstance(error, ConnectionFailedError)
    assert error.timed_out
    assert error.request_sent


@pytest.mark.parametrize(
    ("settings", "timeout", "attempt"),
    [
        pytest.param(TransportSettings(connect_timeout=2, read_timeout=2), None, (2, 2), id="settings"),
        pytest.param(TransportSettings(), 2, (2, 2), id="per-request-timeout"),
        pytest.param(TransportSettings(read_timeout=2), (3, None), (3, 2), id="none-part-from-settings"),
    ],
)
def test_a_trickled_answer_ends_at_the_deadline(bank, context, settings, timeout, attempt):
    connect, read = attempt
    bank.inject_fault(BALANCE, "trickle")  # a 200 whose body comes one byte per 0.5 s
    with make_session(context, settings) as session:
        started = time.monotonic()
        with pytest.raises(requests.RequestException) as caught:
            session.get(bank.base_url + BALANCE, timeout=timeout)
        elapsed = time.monotonic() - started
    error = map_transport_error(caught.value, method="GET", path=BALANCE)
    assert isinstance(error, ConnectionFailedError)
    assert (error.timed_out, error.request_sent) == (True, True)
    assert f"the whole answer took longer than {read:g} s" in error.message
    # One attempt lasts at most connect + read timeout; a generous margin, not a benchmark.
    assert elapsed < connect + read + 3


def test_the_answer_deadline_leaves_a_prompt_answer_and_the_next_call_alone(session, bank, bearer):
    # Many calls on one kept-alive connection: the deadline is per answer, not per connection.
    for _ in range(20):
        assert session.get(bank.base_url + BALANCE, headers=bearer, timeout=(5, 0.5)).status_code == 200
    assert bank.counters()["tls_connections"] == 1


def test_pool_sized_for_the_threads_sharing_it(bank, context, caplog):
    threads = 6
    settings = TransportSettings(connect_timeout=5, read_timeout=5, pool_maxsize=threads)
    with make_session(context, settings) as session:
        headers = {"Authorization": f"Bearer {fetch_token(session, bank)}"}
        bank.reset_counters()
        with caplog.at_level(logging.WARNING, logger="urllib3"), ThreadPoolExecutor(threads) as pool:
            statuses = list(
                pool.map(
                    lambda _: session.get(bank.base_url + BALANCE, headers=headers).status_code,
                    range(threads * 10),
                )
            )
    assert statuses == [200] * threads * 10
    assert bank.counters()["tls_connections"] <= threads
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


# -- retries ------------------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_then_succeeds(session, bank, bearer):
    bank.inject_fault(BALANCE, "429", count=1, retry_after=1)
    response = session.get(bank.base_url + BALANCE, headers=bearer)
    assert response.status_code == 200
    assert retries_of(response) == 1
    assert response.raw.retries.waited == 1.0  # Retry-After honoured, not the (tiny) backoff
    assert bank.counters()["faults_served"] == {"429": 1}


def test_503_is_retried(session, bank, bearer):
    bank.inject_fault(BALANCE, "503", count=2, retry_after=0)
    response = session.get(bank.base_url + BALANCE, headers=bearer)
    assert response.status_code == 200
    assert retries_of(response) == 2


def test_529_site_overloaded_is_retried_like_503_honouring_retry_after(session, bank, bearer):
    bank.inject_fault(BALANCE, "529", count=1, retry_after=1)
    response = session.get(bank.base_url + BALANCE, headers=bearer)
    assert response.status_code == 200
    assert retries_of(response) == 1
    assert response.raw.retries.waited == 1.0  # the bank's Retry-After, not the (tiny) backoff
    assert bank.counters()["faults_served"] == {"529": 1}


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        pytest.param("429", RateLimitedError, id="429"),
        pytest.param("503", ServerError, id="503"),
        pytest.param("529", ServerError, id="529"),
    ],
)
def test_retries_exhausted(session, bank, bearer, kind, error_type):
    bank.inject_fault(BALANCE, kind, count=FAST.max_retries + 5, retry_after=0)
    response = session.get(bank.base_url + BALANCE, headers=bearer)
    with pytest.raises(error_type) as caught:
        raise_for_bank_status(response, method="GET", path=BALANCE)
    assert bank.counters()["faults_served"] == {kind: FAST.max_retries + 1}
    assert f"after {FAST.max_retries + 1} attempts" in caught.value.message
    if kind == "429":
        assert caught.value.retry_after == 0.0


def test_retry_after_beyond_the_budget_gives_up_at_once(bank, context):
    bank.inject_fault(TOKEN, "429", count=3, retry_after=30)
    settings = TransportSettings(max_retries=5, max_total_wait=10)
    with make_session(context, settings) as session:
        response = session.post(bank.base_url + TOKEN, json=credentials(bank))
    with pytest.raises(RateLimitedError) as caught:
        raise_for_bank_status(response, method="POST", path=TOKEN)
    assert caught.value.retry_after == 30.0
    assert bank.counters()["faults_served"] == {"429": 1}


@pytest.mark.parametrize(
    "kind", [pytest.param("429", id="429"), pytest.param("503", id="503"), pytest.param("529", id="529")]
)
def test_token_post_is_retried_on_429_and_503(session, bank, kind):
    bank.inject_fault(TOKEN, kind, count=2, retry_after=0)
    response = session.post(bank.base_url + TOKEN, json=credentials(bank))
    assert response.status_code == 200
    assert retries_of(response) == 2
    assert bank.counters()["tokens_issued"] == 1


@pytest.mark.parametrize("kind", [pytest.param("502", id="502"), pytest.param("504", id="504")])
def test_token_post_is_retried_on_502_and_504(bank, context, kind):
    bank.inject_fault(TOKEN, kind, count=2)
    with make_session(context, FAST, token_url=bank.base_url + TOKEN) as session:
        response = session.post(bank.base_url + TOKEN, json=credentials(bank))
    assert response.status_code == 200
    assert retries_of(response) == 2
    counters = bank.counters()
    assert (counters["faults_served"], counters["tokens_issued"]) == ({kind: 2}, 1)


def test_token_post_gateway_errors_exhausted_say_how_many_attempts(bank, context):
    bank.inject_fault(TOKEN, "502", count=FAST.max_retries + 5)
    with make_session(context, FAST, token_url=bank.base_url + TOKEN) as session:
        response = session.post(bank.base_url + TOKEN, json=credentials(bank))
    with pytest.raises(ServerError) as caught:
        raise_for_bank_status(response, method="POST", path=TOKEN)
    assert bank.counters()["faults_served"] == {"502": FAST.max_retries + 1}
    assert f"answered 502 Bad Gateway after {FAST.max_retries + 1} attempts" in caught.value.message


def test_another_post_is_sent_once_on_502_and_says_so(bank, context):
    bank.inject_fault("/accounts", "502", count=3)
    with make_session(context, FAST, token_url=bank.base_url + TOKEN) as session:
        response = session.post(bank.base_url + "/accounts", json={})
    with pytest.raises(ServerError) as caught:
        raise_for_bank_status(response, method="POST", path="/accounts")
    assert bank.counters()["faults_served"] == {"502": 1}
    assert "(sent once, not retried)" in caught.value.message
    assert "retried with backoff" not in str(caught.value)


def test_token_post_is_not_retried_after_a_dropped_connection(session, bank):
    bank.inject_fault(TOKEN, "drop", count=1)
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        session.post(bank.base_url + TOKEN, json=credentials(bank))
    error = map_transport_error(caught.value, method="POST", path=TOKEN)
    assert isinstance(error, ConnectionFailedError)
    assert error.request_sent
    assert not error.timed_out
    assert bank.counters()["faults_served"] == {"drop": 1}
    assert bank.counters()["tokens_issued"] == 0


def test_dropped_connection_is_retried_for_get(session, bank, bearer):
    bank.inject_fault(BALANCE, "drop", count=2)
    response = session.get(bank.base_url + BALANCE, headers=bearer)
    assert response.status_code == 200
    assert retries_of(response) == 2


def test_connection_refused_is_mapped(context):
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with make_session(context, FAST) as session, pytest.raises(requests.exceptions.ConnectionError) as caught:
        session.post(f"https://127.0.0.1:{port}/public/gw_banking/v1/auth/token-v2", json={})
    error = map_transport_error(caught.value, method="POST", path=TOKEN)
    assert isinstance(error, ConnectionFailedError)
    assert "connection refused" in error.message
    assert not error.request_sent


# -- statuses that are never retried --------------------------------------------------------------------


def test_400_is_not_retried(session, bank):
    response = session.post(bank.base_url + TOKEN, json=credentials(bank, grant_type="password"))
    assert response.status_code == 400
    assert retries_of(response) == 0
    with pytest.raises(ApiError) as caught:
        raise_for_bank_status(response, method="POST", path=TOKEN)
    assert type(caught.value) is ApiError
    assert bank.counters()["token_refused"] == {"unsupported_grant_type": 1}


def test_401_invalid_credentials_is_not_retried(session, bank):
    response = session.post(bank.base_url + TOKEN, json=credentials(bank, client_secret="wrong-secret-value"))
    assert retries_of(response) == 0
    with pytest.raises(InvalidCredentialsError) as caught:
        raise_for_bank_status(response, method="POST", path=TOKEN)
    assert caught.value.bank_reason == "Invalid Credentials"
    assert "wrong-secret-value" not in str(caught.value) + caught.value.body_excerpt
    assert bank.counters()["token_refused"] == {"invalid_credentials": 1}


def test_401_invalid_client_certificate(bank):
    unbound = bank.issue_client_certificate("unbound-client")
    with make_session(client_context(bank, unbound.certificate, unbound.private_key), FAST) as session:
        response = session.post(bank.base_url + TOKEN, json=credentials(bank))
    assert retries_of(response) == 0
    with pytest.raises(InvalidClientCertificateError):
        raise_for_bank_status(response, method="POST", path=TOKEN)


def test_403_forbidden_is_not_retried(session, bank):
    bank.core.set_allowed_ips(bank.client_id, ["10.1.2.3"])
    response = session.post(bank.base_url + TOKEN, json=credentials(bank))
    assert retries_of(response) == 0
    with pytest.raises(ForbiddenError):
        raise_for_bank_status(response, method="POST", path=TOKEN)
    assert bank.counters()["token_refused"] == {"forbidden": 1}


def test_401_revoked_token_is_a_plain_api_error_for_the_api_layer(session, bank, bearer):
    bank.revoke_tokens()
    response = session.get(bank.base_url + BALANCE, headers=bearer)
    assert retries_of(response) == 0
    with pytest.raises(ApiError) as caught:
        raise_for_bank_status(response, method="GET", path=BALANCE)
    assert type(caught.value) is ApiError
    assert caught.value.status_code == 401
    assert bearer["Authorization"].split()[1] not in str(caught.value) + caught.value.body_excerpt


# -- the egress proxy -------------------------------------------------------------------------------


class ConnectProxy(socketserver.ThreadingTCPServer):
    """The smallest CONNECT proxy: records each tunnel's target, then pipes bytes both ways."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _TunnelHandler)
        self.targets = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.refusal = None  # an answer to CONNECT instead of the tunnel (bytes)


class _TunnelHandler(socketserver.BaseRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        self.server.targets.append((method, target))
        if self.server.refusal is not None:
            self.request.sendall(self.server.refusal)
            return
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            sockets = [self.request, upstream]
            while True:
                readable, _, _ = select.select(sockets, [], [], 5)
                if not readable:
                    return
                for source in readable:
                    try:
                        data = source.recv(65536)
                    except OSError:  # a reset: the tunnel is over
                        return
                    if not data:
                        return
                    try:
                        (upstream if source is self.request else self.request).sendall(data)
                    except OSError:
                        if source is not self.request:
                            return
                        # The bank closed (a TLS alert, then a reset): what it sent before still goes to
                        # the client, as a proxy relays a server's last words.
                        sockets = [upstream]


@pytest.fixture
def proxy():
    server = ConnectProxy()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_egress_proxy_tunnels_mutual_tls(bank, context, proxy):
    settings = TransportSettings(connect_timeout=5, read_timeout=5, proxy=proxy.url)
    with make_session(context, settings) as session:
        token = fetch_token(session, bank)
        for _ in range(3):
            session.get(
                bank.base_url + BALANCE, headers={"Authorization": f"Bearer {token}"}
            ).raise_for_status()
    host_port = bank.base_url.split("/")[2]
    assert proxy.targets == [("CONNECT", host_port)]  # one tunnel, reused, TLS end to end
    assert bank.counters()["tls_connections"] == 1
    assert len(context.get_ca_certs()) == 1


def test_proxy_url_is_hidden_from_repr():
    settings = TransportSettings(proxy="http://user:pa55word@proxy.example:3128")
    assert "pa55word" not in repr(settings)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"proxy": "socks5://proxy:1080"}, "proxy", id="socks-proxy"),
        pytest.param({"proxy": "proxy.example:3128"}, "proxy", id="proxy-without-scheme"),
        pytest.param({"connect_timeout": 0}, "connect_timeout", id="zero-timeout"),
        pytest.param({"read_timeout": -1}, "read_timeout", id="negative-timeout"),
        pytest.param({"max_retries": -1}, "max_retries", id="negative-retries"),
        pytest.param({"max_retries": True}, "max_retries", id="bool-retries"),
        pytest.param({"pool_maxsize": 0}, "pool_maxsize", id="empty-pool"),
        pytest.param({"max_total_wait": "60"}, "max_total_wait", id="string-budget"),
    ],
)
def test_settings_are_validated(options, field):
    with pytest.raises(ConfigurationError) as caught:
        TransportSettings(**options)
    assert caught.value.field == field
    assert "proxy.example" not in str(caught.value)


class TlsConnectProxy(ConnectProxy):
    """The same proxy behind TLS of its own (an https:// proxy), with the sandbox's server certificate."""

    def __init__(self, certificate, key):
        super().__init__()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(certificate), str(key))
        self.url = f"https://127.0.0.1:{self.server_address[1]}"

    def get_request(self):
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), address  # an OSError here drops it


@contextlib.contextmanager
def serving_tls_proxy(bank, monkeypatch):
    """An https:// CONNECT proxy on loopback, its certificate signed by the sandbox's CA."""
    # The proxy's TLS is trusted as the system's CAs are (the client certificate is the bank's alone):
    # OpenSSL's SSL_CERT_FILE names the sandbox CA, which also signed the proxy's certificate.
    monkeypatch.setenv("SSL_CERT_FILE", str(bank.ca_cert))
    server = TlsConnectProxy(bank.layout.server_cert, bank.layout.server_key)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def tls_proxy(bank, monkeypatch):
    with serving_tls_proxy(bank, monkeypatch) as server:
        yield server


@pytest.fixture(params=[pytest.param("http", id="http-proxy"), pytest.param("https", id="https-proxy")])
def egress_proxy(request):
    return request.getfixturevalue("proxy" if request.param == "http" else "tls_proxy")


def test_probe_tunnels_through_the_proxy(bank, context, egress_proxy):
    from airflow_provider_bankapi.client.probe import probe_tls

    info = probe_tls(context, bank.base_url, timeout=5, proxy=egress_proxy.url)
    assert info.version.startswith("TLSv1.")
    assert egress_proxy.targets == [("CONNECT", bank.base_url.split("/")[2])]
    assert bank.counters()["tls_connections"] == 1  # the bank's TLS end to end, inside the tunnel


def test_the_connection_test_takes_the_tasks_route_through_the_proxy(bank, egress_proxy):
    from test_api import settings_for

    from airflow_provider_bankapi.client.api import BankingApiClient
    from airflow_provider_bankapi.client.tokens.cache import MemoryTokenStore

    transport = TransportSettings(connect_timeout=5, read_timeout=5, proxy=egress_proxy.url)
    settings = settings_for(bank, transport=transport)
    with BankingApiClient(settings, token_stores=[MemoryTokenStore()]) as client:
        report = client.probe()
        assert report.ok, report
        assert client.get_balance("123")["account_id"] == "123"
    # The handshake step through a tunnel of its own, the token step and the call through one kept-alive
    # tunnel (they share the calls' adapter): none went straight to the bank.
    assert egress_proxy.targets == [("CONNECT", bank.base_url.split("/")[2])] * 2


def test_an_https_proxy_that_is_not_trusted_fails_the_probe_naming_the_proxy(
    bank, context, tls_proxy, tmp_path, monkeypatch
):
    from airflow_provider_bankapi.client.probe import probe_tls
    from airflow_provider_bankapi.errors import HINT_PROXY

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))  # the sandbox CA not trusted

    with pytest.raises(ConnectionFailedError) as caught:
        probe_tls(context, bank.base_url, timeout=5, proxy=tls_proxy.url)

    assert f"TLS with the egress proxy 127.0.0.1:{tls_proxy.server_address[1]} failed" in caught.value.message
    assert "certificate" in caught.value.message
    assert caught.value.hint == HINT_PROXY
    assert tls_proxy.targets == []
    assert bank.counters()["tls_connections"] == 0


def test_an_https_proxy_refusing_the_probes_tunnel_is_a_connection_failure_naming_the_proxy(
    bank, context, tls_proxy
):
    from airflow_provider_bankapi.client.probe import probe_tls
    from airflow_provider_bankapi.errors import HINT_PROXY

    tls_proxy.refusal = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"

    with pytest.raises(ConnectionFailedError) as caught:
        probe_tls(context, bank.base_url, timeout=5, proxy=tls_proxy.url.replace("https://", "https://u:pw@"))

    assert (
        "the egress proxy refused or dropped the tunnel (Tunnel connection failed: 407"
        in caught.value.message
    )
    assert "pw" not in caught.value.message
    assert caught.value.hint == HINT_PROXY
    assert bank.counters()["tls_connections"] == 0


class _RefusingHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")


def test_a_proxy_refusing_the_probes_tunnel_is_a_connection_failure_naming_the_proxy(bank, context):
    from airflow_provider_bankapi.client.probe import probe_tls
    from airflow_provider_bankapi.errors import HINT_PROXY

    with socketserver.TCPServer(("127.0.0.1", 0), _RefusingHandler) as refusing:
        thread = threading.Thread(target=refusing.handle_request, daemon=True)
        thread.start()
        with pytest.raises(ConnectionFailedError) as caught:
            probe_tls(
                context, bank.base_url, timeout=5, proxy=f"http://127.0.0.1:{refusing.server_address[1]}"
            )
        thread.join(timeout=10)
    assert "407" in caught.value.message
    assert caught.value.hint == HINT_PROXY

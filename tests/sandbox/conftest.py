"""Fixtures for the sandbox's own tests: a sandbox per TLS version, requests clients, the real curl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from bankapi_sandbox import Sandbox, pki, running

TLS_VERSIONS = [pytest.param("1.3", id="tls1.3"), pytest.param("1.2", id="tls1.2")]


@pytest.fixture(params=TLS_VERSIONS)
def tls_version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def sandbox(tls_version: str):
    """A fresh sandbox whose server offers TLS up to ``tls_version`` (so both versions are exercised)."""
    with running(tls_max_version=tls_version) as handle:
        yield handle


def _eventually(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def eventually():
    """Poll a predicate until true: for counters the server bumps after the client has moved on."""
    return _eventually


class Client:
    """requests over mutual TLS with one client identity (None: no client certificate)."""

    def __init__(self, sandbox: Sandbox, cert: Path | None, key: Path | None) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        # trust_env off: REQUESTS_CA_BUNDLE would otherwise replace the sandbox CA on every request.
        self.session.trust_env = False
        self.session.verify = str(sandbox.ca_cert)
        if cert is not None:
            self.session.cert = (str(cert), str(key))

    def token(self, **overrides: Any) -> requests.Response:
        connection = self.sandbox.connection
        body = {"client_id": connection["login"], "client_secret": connection["password"]}
        body["grant_type"] = "client_credentials"
        body.update(overrides)
        return self.session.post(f"{self.sandbox.base_url}/auth/token-v2", json=body, timeout=10)

    def access_token(self) -> str:
        response = self.token()
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def get(self, path: str, token: str | None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.session.get(f"{self.sandbox.base_url}{path}", headers=headers, params=params, timeout=10)

    def balance(self, token: str | None, account_id: str = "123") -> requests.Response:
        return self.get(f"/accounts/{account_id}/balance", token)


@pytest.fixture
def client_factory(sandbox: Sandbox):
    """Make requests clients for the sandbox (default: its own client certificate); closed at teardown."""
    made: list[Client] = []

    def make(cert: Path | None | str = "default", key: Path | None = None) -> Client:
        if cert == "default":
            cert, key = sandbox.client_cert, sandbox.client_key
        client = Client(sandbox, cert, key)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        client.session.close()


@pytest.fixture
def client(client_factory) -> Client:
    return client_factory()


@dataclass(frozen=True)
class CurlResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def body(self) -> dict[str, Any]:
        assert self.returncode == 0, f"curl exit {self.returncode}: {self.stderr}"
        return json.loads(self.stdout)


class Curl:
    """The bank's documented curl commands, unchanged but for the host and the file names."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.executable = shutil.which("curl")
        if self.executable is None:
            pytest.fail("curl is required: the sandbox is tested with the bank's own curl commands")

    def run(self, *arguments: str) -> CurlResult:
        environment = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        result = subprocess.run(
            [self.executable, *arguments],
            cwd=self.sandbox.dir,  # the bank's examples name files relative to the current directory
            env=environment,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return CurlResult(result.returncode, result.stdout, result.stderr)

    def body(self, client_id: str | None = None, client_secret: str | None = None) -> str:
        connection = self.sandbox.connection
        return (
            "{\n"
            f'"client_id": "{client_id or connection["login"]}",\n'
            f'"client_secret": "{client_secret or connection["password"]}",\n'
            '"grant_type": "client_credentials"\n'
            "}"
        )

    def token_pem(
        self, cert: str = "client.crt", key: str = "client.key", body: str | None = None
    ) -> CurlResult:
        return self.run(
            "-X", "POST", f"{self.sandbox.base_url}/auth/token-v2",
            "--cert", cert,
            "--key", key,
            "--cacert", "ca.crt",
            "-H", "Content-Type: application/json",
            "-d", body or self.body(),
        )  # fmt: skip

    def token_pfx(
        self, pfx: str = "client.pfx", password: str | None = None, body: str | None = None
    ) -> CurlResult:
        password = password or self.sandbox.connection_pfx["extra"]["client_pfx_password"]
        return self.run(
            "-X", "POST", f"{self.sandbox.base_url}/auth/token-v2",
            "--cert-type", "P12",
            "--cert", f"{pfx}:{password}",
            "--cacert", "ca.crt",
            "-H", "Content-Type: application/json",
            "-d", body or self.body(),
        )  # fmt: skip

    def token(self, variant: str, **options: Any) -> CurlResult:
        return self.token_pfx(**options) if variant == "pfx" else self.token_pem(**options)

    def balance(self, token: str, cert: str = "client.crt", key: str = "client.key") -> CurlResult:
        return self.run(
            "-X", "GET", f"{self.sandbox.base_url}/accounts/123/balance",
            "--cert", cert,
            "--key", key,
            "--cacert", "ca.crt",
            "-H", f"Authorization: Bearer {token}",
        )  # fmt: skip

    def balance_pfx(self, token: str) -> CurlResult:
        password = self.sandbox.connection_pfx["extra"]["client_pfx_password"]
        return self.run(
            "-X", "GET", f"{self.sandbox.base_url}/accounts/123/balance",
            "--cert-type", "P12",
            "--cert", f"client.pfx:{password}",
            "--cacert", "ca.crt",
            "-H", f"Authorization: Bearer {token}",
        )  # fmt: skip


@pytest.fixture
def curl(sandbox: Sandbox) -> Curl:
    return Curl(sandbox)


@pytest.fixture
def foreign_identity(tmp_path: Path) -> tuple[Path, Path]:
    """A client certificate and key from another CA (another environment's chain)."""
    other = pki.issue_client_certificate(pki.make_ca("Another bank CA"), "stranger")
    cert = pki.write_public(tmp_path / "stranger.crt", other.certificate_pem())
    key = pki.write_private(tmp_path / "stranger.key", other.private_key_pem())
    return cert, key

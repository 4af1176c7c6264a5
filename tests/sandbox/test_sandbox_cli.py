"""The CLI as a user runs it: real subprocesses for init, serve and the credential commands."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading

import pytest
import requests

from bankapi_sandbox import Sandbox

pytestmark = pytest.mark.slow  # the CLI in subprocesses

CLI = [sys.executable, "-m", "bankapi_sandbox"]


def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *arguments], capture_output=True, text=True, timeout=60, check=False)


class Output:
    """The lines a process prints, read by a thread (select() cannot see lines Python already buffered)."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def next(self, timeout: float = 20.0) -> str:
        return self.lines.get(timeout=timeout)


@pytest.fixture
def provisioned(tmp_path):
    directory = tmp_path / "bank"
    result = cli("init", str(directory))
    assert result.returncode == 0, result.stderr
    assert "client_id:" in result.stdout
    return directory


@pytest.fixture
def served(provisioned):
    """``serve DIR`` in its own process; yields (process, stdout lines, base URL, directory)."""
    process = subprocess.Popen(
        [*CLI, "serve", str(provisioned)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    output = Output(process.stdout)
    try:
        base_url = output.next()
        yield process, output, base_url, provisioned
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)
        output.thread.join(timeout=10)
        process.stdout.close()
        process.stderr.close()


def _token(directory, base_url: str) -> requests.Response:
    connection = json.loads((directory / "connection.json").read_text())
    extra = connection["extra"]
    body = {"client_id": connection["login"], "client_secret": connection["password"]}
    body["grant_type"] = "client_credentials"
    with requests.Session() as session:
        session.trust_env = False
        return session.post(
            f"{base_url}/auth/token-v2",
            json=body,
            cert=(extra["client_cert"], extra["client_private_key"]),
            verify=extra["ca_cert"],
            timeout=10,
        )


def test_serve_prints_the_base_url_first_and_rewrites_the_connections(served):
    process, output, base_url, directory = served
    assert base_url.startswith("https://127.0.0.1:")
    assert base_url.endswith("/public/gw_banking/v1")
    assert output.next().startswith("control: http://127.0.0.1:")
    port = int(base_url.split(":")[2].split("/")[0])
    for name in ("connection.json", "connection-pfx.json"):
        connection = json.loads((directory / name).read_text())
        assert (connection["host"], connection["port"]) == (base_url, port)
    assert _token(directory, base_url).status_code == 200


def test_credential_commands_apply_to_the_running_server(served):
    _, _, base_url, directory = served
    assert cli("allow-ips", str(directory), "198.51.100.0/24").returncode == 0
    assert _token(directory, base_url).json()["message"] == "Forbidden"
    assert cli("allow-ips", str(directory), "127.0.0.1").returncode == 0
    assert cli("deactivate", str(directory)).returncode == 0
    assert _token(directory, base_url).json()["message"] == "Invalid Credentials"
    assert cli("activate", str(directory)).returncode == 0
    assert _token(directory, base_url).status_code == 200
    listing = cli("list", str(directory))
    assert "active; allowed IPs: 127.0.0.1/32" in listing.stdout
    assert "secret" not in listing.stdout


def test_rotation_from_the_cli(served):
    _, _, base_url, directory = served
    issued = cli("issue-cert", str(directory), "client2", "--bind")
    assert issued.returncode == 0, issued.stderr
    refused = cli("issue-cert", str(directory), "client3", "--bind")
    assert refused.returncode == 2
    assert "already has 2 active certificates" in refused.stderr
    assert cli("unbind", str(directory), str(directory / "client.crt")).returncode == 0
    assert _token(directory, base_url).json()["message"] == "Invalid Client Certificate"
    assert cli("bind", str(directory), str(directory / "client3.crt")).returncode == 0
    assert cli("bind", str(directory), str(directory / "client.crt")).returncode == 2


def test_rotate_secret_prints_the_new_secret_once_and_the_old_one_stops_working(served):
    _, _, base_url, directory = served
    old = json.loads((directory / "connection.json").read_text())["password"]
    rotated = cli("rotate-secret", str(directory))
    assert rotated.returncode == 0, rotated.stderr
    secret = rotated.stdout.split("client_secret (shown once, store it now; ")[1].split(": ")[1].strip()
    assert secret != old
    assert secret not in (directory / "core.json").read_text()
    assert _token(directory, base_url).json()["message"] == "Invalid Credentials"  # the old secret
    connection = json.loads((directory / "connection.json").read_text())
    (directory / "connection.json").write_text(json.dumps({**connection, "password": secret}))
    assert _token(directory, base_url).status_code == 200


def test_add_prints_a_new_secret_once(provisioned):
    added = cli("add", str(provisioned), "--client-id", "second", "--allow-ip", "10.0.0.0/8")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.split("client_secret (shown once, store it now): ")[1].strip()
    assert secret not in (provisioned / "core.json").read_text()
    assert "second: active; allowed IPs: 10.0.0.0/8" in cli("list", str(provisioned)).stdout


def test_attach_gives_a_handle_on_a_served_sandbox(served):
    _, _, base_url, directory = served
    handle = Sandbox.attach(directory)
    assert handle.base_url == base_url
    handle.inject_fault("/auth/token-v2", "429", retry_after=9)
    response = _token(directory, base_url)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "9")
    assert handle.counters()["faults_served"] == {"429": 1}


@pytest.mark.parametrize(
    "signum", [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]
)
def test_serve_stops_cleanly_on_a_signal(served, signum):
    process, _, base_url, directory = served
    assert (directory / "sandbox.json").exists()
    process.send_signal(signum)
    process.wait(timeout=30)
    stderr = process.stderr.read()
    assert process.returncode == 0, stderr
    assert "sandbox stopped" in stderr
    assert "Traceback" not in stderr
    assert not (directory / "sandbox.json").exists()
    with pytest.raises(requests.exceptions.ConnectionError):
        _token(directory, base_url)


def test_serve_refuses_a_directory_that_was_never_provisioned(tmp_path):
    result = cli("serve", str(tmp_path))
    assert result.returncode == 2
    assert "run `init" in result.stderr


def test_init_with_a_port_writes_it(tmp_path):
    assert cli("init", str(tmp_path), "--port", "9999").returncode == 0
    connection = json.loads((tmp_path / "connection.json").read_text())
    assert connection["host"].startswith("https://127.0.0.1:9999/")
    # Saved with the connection, the port lets the UI's Test button reuse the stored secrets.
    assert connection["port"] == 9999
    assert cli("init", str(tmp_path)).returncode == 2

"""Run a sandbox: :func:`running` (a context manager for tests) and the :class:`Sandbox` handle.

::

    from bankapi_sandbox import running

    with running(expires_in=60) as sandbox:
        os.environ["AIRFLOW_CONN_BANKAPI_DEFAULT"] = sandbox.connection_json
        sandbox.inject_fault("/accounts/123/balance", "429", count=2, retry_after=1)
        ...  # run the code under test
        assert sandbox.counters()["tokens_issued"] == 1

The handle drives the server through its control endpoint, so :meth:`Sandbox.attach` gives the
same handle on a sandbox that ``python -m bankapi_sandbox serve DIR`` runs in
another process.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bankapi_sandbox.bank import BankApi
from bankapi_sandbox.control import ControlClient, ControlServer
from bankapi_sandbox.provision import Layout, base_url, init, issue_client, set_base_url
from bankapi_sandbox.server import BankServer, server_context
from bankapi_sandbox.state import SandboxState

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator

    from bankapi_sandbox.core import CredentialStore
    from bankapi_sandbox.provision import ClientFiles

# How often the accept loops look for a stop request: the most a stop waits for them.
POLL_SECONDS = 0.05
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


class SandboxServers:
    """The two servers of one provisioned directory, run in threads: the bank (:class:`BankServer`, HTTPS
    with client certificates) and its control endpoint (:class:`ControlServer`, plain HTTP on loopback).

    :param directory: a provisioned sandbox directory (see provision.init).
    :param host: the address the HTTPS server listens on.
    :param port: its port (0: any free port).
    :param control_port: the control endpoint's port on 127.0.0.1 (0: any free port).
    :param expires_in: lifetime of new tokens, in seconds.
    :param latency: seconds added before every response.
    :param tls_max_version: highest TLS version offered ("1.2", "1.3" or None for the highest).
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        expires_in: int = 3600,
        latency: float = 0.0,
        tls_max_version: ssl.TLSVersion | str | None = None,
    ) -> None:
        self.layout = Layout(Path(directory).resolve())
        self.state = SandboxState(latency=latency, token_lifetime=expires_in)
        api = BankApi(self.layout.credential_store(), self.state)
        context = server_context(self.layout, tls_max_version)
        self.https = BankServer((host, port), context=context, api=api, state=self.state)
        self.base_url = base_url(_WILDCARDS.get(host, host), self.https.server_address[1])
        try:
            self.control = ControlServer(control_port, self.state, self.base_url)
        except OSError:
            self.https.server_close()
            raise
        self._thread: threading.Thread | None = None

    @property
    def control_url(self) -> str:
        return self.control.url

    def start(self) -> None:
        """Serve in background threads; point the connection files at this server's real address."""
        set_base_url(self.layout, self.base_url)
        self._thread = threading.Thread(
            target=self.https.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name="bankapi-sandbox",
            daemon=True,
        )
        self._thread.start()
        self.control.start()
        runtime = {"base_url": self.base_url, "control_url": self.control_url, "pid": os.getpid()}
        self.layout.runtime.write_text(json.dumps(runtime, indent=2) + "\n")

    def stop(self) -> None:
        """Stop both servers, cut open connections and join every thread."""
        self.state.stopping.set()  # wakes requests sleeping on latency or hanging on a fault
        # Both accept loops notice a shutdown only at their next poll: wait for them side by side.
        control = threading.Thread(target=self.control.stop, name="bankapi-sandbox-control-stop")
        control.start()
        if self._thread is not None:
            self.https.shutdown()
            self._thread.join()
        self.https.close_connections()
        self.https.server_close()  # joins the connection threads
        control.join()
        self.layout.runtime.unlink(missing_ok=True)


class FaultKind(str, enum.Enum):
    """What :meth:`Sandbox.inject_fault` does to a request (its value, a plain string, works as well)."""

    #: 429 with ``Retry-After`` in seconds (1 s unless ``retry_after`` says otherwise).
    TOO_MANY_REQUESTS = "429"
    #: 429 with ``Retry-After`` as an HTTP date, in the bank's clock.
    TOO_MANY_REQUESTS_DATE = "429-date"
    BAD_GATEWAY = "502"
    SERVICE_UNAVAILABLE = "503"
    GATEWAY_TIMEOUT = "504"
    #: 529 "site is overloaded", as Open Finance gateways send, with ``Retry-After`` when given one.
    SITE_OVERLOADED = "529"
    NOT_FOUND = "404"
    #: A 200 whose body is an HTML page, as a misrouted proxy sends.
    NOT_JSON = "not-json"
    #: The connection closes without a response.
    DROP = "drop"
    #: No response until the client gives up.
    HANG = "hang"
    #: A 200 whose body comes one byte every half second.
    TRICKLE = "trickle"
    #: Every token is revoked just before the request is served: it gets ``401 invalid_token``.
    REVOKE = "revoke"
    #: About 1 MB of gzip that inflates to 1 GiB, as a 200 and as the body of a 500.
    GZIP_BOMB = "gzip-bomb"
    GZIP_BOMB_ERROR = "gzip-bomb-500"


class Sandbox:
    """A handle on a running sandbox: its address, its files, its Airflow connection and its knobs.

    :param directory: the provisioned directory.
    :param base_url: the Banking API base URL, ending in ``/public/gw_banking/v1``.
    :param control_url: the control endpoint's URL.
    """

    def __init__(self, directory: Path | str, base_url: str, control_url: str) -> None:
        self.dir = Path(directory)
        self.layout = Layout(self.dir)
        self.base_url = base_url
        self.control_url = control_url
        self.core: CredentialStore = self.layout.credential_store()
        self._control = ControlClient(control_url)

    @classmethod
    def attach(cls, directory: Path | str) -> Sandbox:
        """The handle of the sandbox a ``serve`` process runs for ``directory``."""
        layout = Layout(Path(directory).resolve())
        try:
            runtime = json.loads(layout.runtime.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no sandbox is serving {layout.directory} (no {layout.runtime.name})"
            ) from None
        return cls(layout.directory, runtime["base_url"], runtime["control_url"])

    def __repr__(self) -> str:
        return f"Sandbox(base_url={self.base_url!r}, dir={str(self.dir)!r})"

    # -- the Airflow connection and its files -------------------------------------------------

    @property
    def connection(self) -> dict[str, Any]:
        """The Airflow connection (``AIRFLOW_CONN_*`` JSON form, as a dict), PEM variant."""
        return self.layout.read_connection()

    @property
    def connection_json(self) -> str:
        return json.dumps(self.connection)

    @property
    def connection_pfx(self) -> dict[str, Any]:
        """The same connection with ``client_pfx_secret`` + ``client_pfx_password`` instead of PEM files."""
        return self.layout.read_connection(pfx=True)

    @property
    def connection_pfx_json(self) -> str:
        return json.dumps(self.connection_pfx)

    @property
    def client_id(self) -> str:
        return str(self.connection["login"])

    @property
    def ca_cert(self) -> Path:
        return self.layout.ca_cert

    @property
    def client_cert(self) -> Path:
        return self.layout.client_cert

    @property
    def client_key(self) -> Path:
        return self.layout.client_key

    @property
    def client_pfx(self) -> Path:
        return self.layout.client_pfx

    def issue_client_certificate(self, name: str, *, bind: bool = False, **options: Any) -> ClientFiles:
        """Sign another client certificate (``DIR/NAME.crt`` + ``.key``), bound to the credential if asked.

        :param name: file stem and common name.
        :param bind: bind it to this sandbox's credential (refused if two are already active).
        :param options: validity options of :func:`pki.issue_client_certificate` (``days``, ``not_after``...).
        """
        return issue_client(self.layout, name, bind_to=self.client_id if bind else None, **options)

    # -- knobs and counters (through the control endpoint) ------------------------------------

    def counters(self) -> dict[str, Any]:
        """The counters since start (or the last reset).

        ``tokens_issued``, ``token_refused`` (by reason), ``api_requests``, ``tls_connections``,
        and two more: ``tls_handshake_failures`` and ``faults_served`` (by kind).
        """
        result: dict[str, Any] = self._control.call("GET", "/counters")
        return result

    def reset_counters(self) -> None:
        self._control.call("POST", "/counters/reset")

    def settings(self) -> dict[str, Any]:
        """The knobs now: ``{"latency": seconds, "token_lifetime": seconds}``."""
        result: dict[str, Any] = self._control.call("GET", "/settings")
        return result

    def set_latency(self, seconds: float) -> None:
        self._control.call("POST", "/settings", {"latency": seconds})

    def set_token_lifetime(self, seconds: int) -> None:
        """``expires_in`` of the tokens issued from now on."""
        self._control.call("POST", "/settings", {"token_lifetime": seconds})

    def inject_fault(
        self, path: str, kind: FaultKind | str, count: int = 1, retry_after: int | None = None, after: int = 0
    ) -> None:
        """The next ``count`` requests to ``path`` fail as ``kind`` (once ``after`` requests went through).

        :param path: relative to the base URL (``"/accounts/123/balance"``, ``"/auth/token-v2"``),
            the full path, or ``"*"`` for any path.
        :param kind: a :class:`FaultKind` or its value (``"429"``, ``"503"``, ``"529"``, ``"drop"``...).
        :param count: how many requests in a row.
        :param retry_after: the Retry-After header in seconds (429, 503, 529).
        :param after: requests to ``path`` let through first (``after=1``: page 2 of a paginated read fails).
        """
        self._control.call(
            "POST",
            "/faults",
            {
                "path": path,
                # A kind the server does not know is its to refuse: the refusal lists the kinds.
                "kind": kind.value if isinstance(kind, FaultKind) else kind,
                "count": count,
                "retry_after": retry_after,
                "after": after,
            },
        )

    def pending_faults(self) -> dict[str, Any]:
        """The faults not served yet: ``{path: {"kind", "remaining", "retry_after"}}``."""
        result: dict[str, Any] = self._control.call("GET", "/faults")
        return result

    def clear_faults(self) -> None:
        self._control.call("DELETE", "/faults")

    def revoke_tokens(self, client_id: str | None = None) -> int:
        """Revoke every live token (of one credential if given); protected calls with them get 401."""
        return int(self._control.call("POST", "/tokens/revoke", {"client_id": client_id})["revoked"])

    def expire_tokens(self, client_id: str | None = None) -> int:
        """Make every live token expire now (tests of expiry need not wait)."""
        return int(self._control.call("POST", "/tokens/expire", {"client_id": client_id})["expired"])

    def reset(self) -> None:
        """Counters, faults and knobs back to their start values; every token revoked."""
        self._control.call("POST", "/reset")

    def set_available_balance(self, account_id: str, amount: str | None) -> None:
        """Make the account's ``available`` balance ``amount`` (``"1500.00"``; None: the generated one)."""
        self._control.call("POST", "/balances", {"account_id": account_id, "available": amount})


@contextlib.contextmanager
def running(
    directory: Path | str | None = None,
    *,
    expires_in: int = 3600,
    latency: float = 0.0,
    tls_max_version: ssl.TLSVersion | str | None = None,
) -> Iterator[Sandbox]:
    """Provision (unless ``directory`` already holds a sandbox) and run a sandbox on 127.0.0.1.

    :param directory: where the files go; None for a temporary directory removed at exit.
    :param expires_in: lifetime of the tokens, in seconds (changeable with ``set_token_lifetime``).
    :param latency: seconds added before every response (changeable with ``set_latency``).
    :param tls_max_version: highest TLS version the server offers (``"1.2"`` to test TLS 1.2).
    """
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="bankapi-sandbox-"))
        layout = Layout(Path(directory).resolve())
        if not layout.is_provisioned():
            init(layout.directory)
        server = SandboxServers(
            layout.directory, expires_in=expires_in, latency=latency, tls_max_version=tls_max_version
        )
        stack.callback(server.stop)
        server.start()
        yield Sandbox(layout.directory, server.base_url, server.control_url)

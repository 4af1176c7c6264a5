"""``make demo-curl``: a sandbox bank, then the bank's own curl commands against it, over mutual TLS.

::

    python -m demos.curl_demo [--dir DIR]    # from the repository root

The commands are the bank's documented examples, unchanged but for the host and the file names: the real
``curl`` binary runs in the sandbox directory, so ``--cert client.crt --key client.key --cacert
ca.crt`` name the provisioned files exactly as the bank's example does.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bankapi_sandbox.runner import running

if TYPE_CHECKING:
    from collections.abc import Sequence

PEM_IDENTITY = ("--cert", "client.crt", "--key", "client.key", "--cacert", "ca.crt")
ACCOUNT_ID = "123"  # the example account of the bank's documentation


def token_body(client_id: str, client_secret: str) -> str:
    """The token request body, laid out as in the bank's documented example."""
    return json.dumps(
        {"client_id": client_id, "client_secret": client_secret, "grant_type": "client_credentials"}, indent=0
    )


def token_command(base_url: str, body: str, identity: Sequence[str] = PEM_IDENTITY) -> list[str]:
    """The documented ``POST /auth/token-v2`` curl command (``identity``: the PEM trio or the PFX pair)."""
    return [
        "curl", "-X", "POST", f"{base_url}/auth/token-v2", *identity,
        "-H", "Content-Type: application/json", "-d", body,
    ]  # fmt: skip


def balance_command(base_url: str, access_token: str, account_id: str = ACCOUNT_ID) -> list[str]:
    """The bank's documented ``GET /accounts/{id}/balance`` curl command."""
    return [
        "curl", "-X", "GET", f"{base_url}/accounts/{account_id}/balance", *PEM_IDENTITY,
        "-H", f"Authorization: Bearer {access_token}",
    ]  # fmt: skip


def curl_environment() -> dict[str, str]:
    """The environment minus proxies: the sandbox is on loopback, and a proxy would break mTLS."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def run_curl(
    command: Sequence[str], directory: Path, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run the real curl binary in ``directory`` (so the example's relative file names resolve there)."""
    executable = shutil.which(command[0])
    if executable is None:
        raise FileNotFoundError(
            "curl is not installed: the demo runs the bank's curl commands (apt-get install curl)"
        )
    return subprocess.run(
        [executable, *command[1:]],
        cwd=directory,
        env=curl_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _shown(command: Sequence[str], secrets: dict[str, str]) -> str:
    """The command as the bank's example lays it out, one option per line, secrets replaced by a label."""
    words = [shlex.quote(word) for word in command]
    for secret, label in secrets.items():
        words = [word.replace(secret, label) for word in words]
    lines, current = [], words[:3]
    for word in words[3:]:
        if word.startswith("-"):
            lines.append(" ".join(current))
            current = [word]
        else:
            current.append(word)
    lines.append(" ".join(current))
    return " \\\n  ".join(lines)


def _response(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if result.returncode != 0:
        raise RuntimeError(f"curl failed (exit {result.returncode}): {result.stderr.strip()}")
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def demo(out: TextIO, directory: Path | None = None) -> None:
    """Provision, serve, fetch a token and a balance with curl, print both, stop.

    :param out: where to print.
    :param directory: keep the sandbox files there (default: a temporary directory, removed).
    """
    with running(directory) as sandbox:
        connection = sandbox.connection
        secret = connection["password"]
        print(f"Sandbox bank listening at {sandbox.base_url} (files in {sandbox.dir})\n", file=out)

        command = token_command(sandbox.base_url, token_body(connection["login"], secret))
        print("$ " + _shown(command, {secret: "<client_secret from connection.json>"}), file=out)
        token = _response(run_curl(command, sandbox.dir))
        print(json.dumps(token, indent=2), file=out)
        print(
            "(A throwaway sandbox token, shown for the demo: it is useless once the sandbox stops.)\n",
            file=out,
        )
        access_token = token["access_token"]

        command = balance_command(sandbox.base_url, access_token)
        print("$ " + _shown(command, {access_token: "<access_token above>"}), file=out)
        print(json.dumps(_response(run_curl(command, sandbox.dir)), indent=2), file=out)
        print(f"\nCounters: {json.dumps(sandbox.counters())}", file=out)
    print("Sandbox stopped.", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demos.curl_demo")
    parser.add_argument("--dir", help="keep the sandbox files there (default: a temporary directory)")
    args = parser.parse_args(argv)
    demo(sys.stdout, Path(args.dir) if args.dir else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bankapi_sandbox``: provision, serve, manage credentials.

::

    init DIR [--port 8443]            provision (CA, server and client certificates, credential, connections)
    serve DIR [--host H] [--port 0]   run it; stdout line 1: the base URL, line 2: "control: URL"
    list DIR                          the credentials (never their secrets)
    add DIR [--client-id ID] [--allow-ip IP ...] [--inactive]   a new credential; prints its secret once
    issue-cert DIR NAME [--days N] [--bind]   sign DIR/NAME.crt + NAME.key with the sandbox CA
    bind | unbind DIR CERT [--client-id ID]   CERT: a PEM file or a SHA-256 fingerprint
    deactivate | activate DIR [--client-id ID]
    rotate-secret DIR [--client-id ID]   a new client_secret; prints it once
    allow-ips DIR IP_OR_CIDR ... [--client-id ID]   (no address at all: every IP is refused)

``--client-id`` defaults to the credential of DIR/connection.json. Credential changes apply to a
running ``serve`` at once: it re-reads DIR/core.json whenever the file changes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bankapi_sandbox import provision
from bankapi_sandbox.core import CoreError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bankapi_sandbox.core import Credential


def _layout(directory: str) -> provision.Layout:
    layout = provision.Layout(Path(directory).resolve())
    if not layout.is_provisioned():
        raise CoreError(f"{layout.directory} is not a provisioned sandbox: run `init {directory}` first")
    return layout


def _client_id(args: argparse.Namespace, layout: provision.Layout) -> str:
    return args.client_id or str(layout.read_connection()["login"])


def _describe(credential: Credential) -> str:
    certificates = ", ".join(
        f"{c.fingerprint_sha256[:16]}... {c.subject or '(fingerprint only)'}" for c in credential.certificates
    )
    return (
        f"{credential.client_id}: {'active' if credential.active else 'INACTIVE'}; "
        f"allowed IPs: {', '.join(credential.allowed_ips) or 'none'}; certificates: {certificates or 'none'}"
    )


def cmd_init(args: argparse.Namespace) -> int:
    names = tuple(dict.fromkeys([*provision.SERVER_NAMES, *args.server_name]))
    layout = provision.init(
        args.dir,
        host=args.host,
        port=args.port,
        server_names=names,
        client_id=args.client_id,
        force=args.force,
    )
    print(f"Provisioned a sandbox bank in {layout.directory}")
    print(f"client_id: {layout.read_connection()['login']} (client_secret in {layout.connection.name}, 0600)")
    print(f"Airflow connection: {layout.connection} and {layout.connection_pfx}")
    print(f"Next: python -m bankapi_sandbox serve {args.dir}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bankapi_sandbox.runner import SandboxServers

    layout = _layout(args.dir)
    server = SandboxServers(
        layout.directory,
        host=args.host,
        port=args.port,
        control_port=args.control_port,
        expires_in=args.expires_in,
        latency=args.latency,
        tls_max_version=args.tls_max_version,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    try:
        # Line 1 is the contract with scripts and tests: the base URL, alone, flushed at once.
        print(server.base_url, flush=True)
        print(f"control: {server.control_url}", flush=True)
        print(f"connections: {layout.connection} {layout.connection_pfx}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    print("sandbox stopped", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for credential in _layout(args.dir).credential_store().credentials():
        print(_describe(credential))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    store = _layout(args.dir).credential_store()
    credential, secret = store.add(args.client_id, allowed_ips=args.allow_ip, active=not args.inactive)
    print(_describe(credential))
    # As the bank's CORE does: the secret is shown once, to be copied; only its digest is stored.
    print(f"client_secret (shown once, store it now): {secret}")
    return 0


def cmd_rotate_secret(args: argparse.Namespace) -> int:
    layout = _layout(args.dir)
    credential, secret = layout.credential_store().rotate_secret(_client_id(args, layout))
    print(_describe(credential))
    print(f"client_secret (shown once, store it now; the old one no longer fetches tokens): {secret}")
    return 0


def cmd_issue_cert(args: argparse.Namespace) -> int:
    layout = _layout(args.dir)
    bind_to = _client_id(args, layout) if args.bind else None
    files = provision.issue_client(layout, args.name, bind_to=bind_to, days=args.days)
    print(f"{files.certificate} {files.private_key} sha256={files.fingerprint_sha256}")
    if bind_to:
        print(f"bound to {bind_to}")
    return 0


def cmd_change(args: argparse.Namespace) -> int:
    layout = _layout(args.dir)
    store = layout.credential_store()
    client_id = _client_id(args, layout)
    operations: dict[str, Any] = {
        "bind": lambda: store.bind(client_id, args.certificate),
        "unbind": lambda: store.unbind(client_id, args.certificate),
        "deactivate": lambda: store.deactivate(client_id),
        "activate": lambda: store.activate(client_id),
        "allow-ips": lambda: store.set_allowed_ips(client_id, args.addresses),
    }
    print(_describe(operations[args.command]()))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bankapi_sandbox",
        description="A local Banking API with real mutual TLS.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="provision a sandbox into DIR")
    init.add_argument("dir")
    init.add_argument("--host", default="127.0.0.1", help="host of the base URL in the connection files")
    init.add_argument(
        "--port",
        type=int,
        default=provision.DEFAULT_PORT,
        help="port of the base URL in the connection files (serve rewrites it with the real one)",
    )
    init.add_argument(
        "--server-name", action="append", default=[], help="another name for the server certificate"
    )
    init.add_argument("--client-id", help="the credential's client_id (default: random)")
    init.add_argument("--force", action="store_true", help="provision again over an existing sandbox")
    init.set_defaults(run=cmd_init)

    serve = commands.add_parser("serve", help="run the sandbox of DIR until SIGTERM/SIGINT")
    serve.add_argument("dir")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0: any free port (the base URL says which)")
    serve.add_argument("--control-port", type=int, default=0)
    serve.add_argument("--expires-in", type=int, default=3600, help="token lifetime in seconds")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds added before every response")
    serve.add_argument("--tls-max-version", choices=["1.2", "1.3"])
    serve.set_defaults(run=cmd_serve)

    listing = commands.add_parser("list", help="list the credentials")
    listing.add_argument("dir")
    listing.set_defaults(run=cmd_list)

    add = commands.add_parser("add", help="create a credential (its secret is printed once)")
    add.add_argument("dir")
    add.add_argument("--client-id")
    add.add_argument(
        "--allow-ip", action="append", default=None, help="IP or CIDR (repeat; default loopback)"
    )
    add.add_argument("--inactive", action="store_true")
    add.set_defaults(run=cmd_add)

    issue = commands.add_parser("issue-cert", help="sign another client certificate with the sandbox CA")
    issue.add_argument("dir")
    issue.add_argument("name")
    issue.add_argument("--days", type=float, default=365)
    issue.add_argument("--bind", action="store_true", help="bind it to the credential (see --client-id)")
    issue.add_argument("--client-id")
    issue.set_defaults(run=cmd_issue_cert)

    for name, text in (
        ("bind", "bind a certificate (two active at most)"),
        ("unbind", "unbind a certificate"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("dir")
        command.add_argument("certificate", help="a PEM certificate file or its SHA-256 fingerprint")
        command.add_argument("--client-id")
        command.set_defaults(run=cmd_change)
    for name in ("deactivate", "activate"):
        command = commands.add_parser(name, help=f"{name} a credential")
        command.add_argument("dir")
        command.add_argument("--client-id")
        command.set_defaults(run=cmd_change)
    rotate = commands.add_parser("rotate-secret", help="give a credential a new secret (printed once)")
    rotate.add_argument("dir")
    rotate.add_argument("--client-id")
    rotate.set_defaults(run=cmd_rotate_secret)
    allow = commands.add_parser("allow-ips", help="replace a credential's allowlist")
    allow.add_argument("dir")
    allow.add_argument("addresses", nargs="*", metavar="IP_OR_CIDR")
    allow.add_argument("--client-id")
    allow.set_defaults(run=cmd_change)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "allow_ip", False) is None:
        args.allow_ip = ["127.0.0.1", "::1"]
    try:
        code: int = args.run(args)
    except (CoreError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code

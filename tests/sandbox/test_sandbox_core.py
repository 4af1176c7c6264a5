"""CORE's credential store and the provisioning of a sandbox directory, without a server."""

from __future__ import annotations

import datetime
import json
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from bankapi_sandbox import pki, provision
from bankapi_sandbox.core import CoreError, CredentialStore, fingerprint_of


@pytest.fixture
def store(tmp_path):
    return CredentialStore(tmp_path / "core.json")


@pytest.fixture
def ca():
    return pki.make_ca()


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_shows_the_secret_once_and_stores_only_a_digest(store):
    credential, secret = store.add("acme", allowed_ips=["127.0.0.1"])
    text = store.path.read_text()
    assert secret not in text
    assert credential.check_secret(secret)
    assert not credential.check_secret(secret + "x")
    assert _mode(store.path) == 0o600
    assert "secret" not in repr(credential)
    with pytest.raises(CoreError, match="already exists"):
        store.add("acme")


@pytest.mark.parametrize(
    "as_what",
    [
        pytest.param("certificate", id="certificate"),
        pytest.param("pem-file", id="pem-file"),
        pytest.param("fingerprint", id="fingerprint"),
        pytest.param("colon-fingerprint", id="colon-fingerprint"),
    ],
)
def test_bind_accepts_a_certificate_a_file_or_a_fingerprint(store, ca, tmp_path, as_what):
    issued = pki.issue_client_certificate(ca)
    fingerprint = fingerprint_of(issued.certificate)
    reference = {
        "certificate": issued.certificate,
        "pem-file": pki.write_public(tmp_path / "c.crt", issued.certificate_pem()),
        "fingerprint": fingerprint,
        "colon-fingerprint": ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper(),
    }[as_what]
    store.add("acme")
    assert store.bind("acme", reference).is_bound(fingerprint)


def test_third_active_certificate_is_refused_and_expired_ones_do_not_count(store, ca):
    store.add("acme")
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = pki.issue_client_certificate(ca, not_before=now - datetime.timedelta(days=9),
                                           not_after=now - datetime.timedelta(days=1))  # fmt: skip
    first, second, third = (pki.issue_client_certificate(ca, f"c{n}") for n in range(3))
    store.bind("acme", expired.certificate)
    store.bind("acme", first.certificate)
    store.bind("acme", second.certificate)
    with pytest.raises(CoreError, match="already has 2 active certificates.*unbind one first"):
        store.bind("acme", third.certificate)
    with pytest.raises(CoreError, match="already bound"):
        store.bind("acme", first.certificate)
    store.unbind("acme", first.certificate)
    assert store.bind("acme", third.certificate).is_bound(fingerprint_of(third.certificate))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda s: s.bind("nobody", "ab" * 32), "no credential", id="bind-unknown-credential"),
        pytest.param(lambda s: s.unbind("acme", "ab" * 32), "not bound", id="unbind-not-bound"),
        pytest.param(lambda s: s.bind("acme", "cafe"), "64 hex digits", id="short-fingerprint"),
        pytest.param(lambda s: s.set_allowed_ips("acme", ["10.0.0.300"]), "not an IP", id="bad-ip"),
        pytest.param(lambda s: s.deactivate("nobody"), "no credential", id="deactivate-unknown"),
    ],
)
def test_refusals_say_why(store, call, message):
    store.add("acme")
    with pytest.raises(CoreError, match=message):
        call(store)


@pytest.mark.parametrize(
    ("allowlist", "address", "allowed"),
    [
        pytest.param(["127.0.0.1"], "127.0.0.1", True, id="exact"),
        pytest.param(["10.0.0.0/8"], "10.20.30.40", True, id="cidr"),
        pytest.param(["10.0.0.0/8"], "127.0.0.1", False, id="outside-cidr"),
        pytest.param(["127.0.0.1"], "::ffff:127.0.0.1", True, id="ipv4-mapped"),
        pytest.param(["::1"], "::1", True, id="ipv6"),
        pytest.param([], "127.0.0.1", False, id="empty-allowlist"),
    ],
)
def test_allowlist(store, allowlist, address, allowed):
    store.add("acme")
    assert store.set_allowed_ips("acme", allowlist).allows_ip(address) is allowed


def test_a_running_reader_sees_changes_made_by_another_writer(store, tmp_path):
    reader = CredentialStore(tmp_path / "core.json")  # as the server holds it
    store.add("acme")
    assert reader.require("acme").active
    store.deactivate("acme")
    assert not reader.require("acme").active
    CredentialStore(tmp_path / "core.json").activate("acme")  # as a CLI process would
    assert reader.require("acme").active


def test_init_provisions_every_file(tmp_path):
    layout = provision.init(tmp_path / "bank", port=9443)
    private = [layout.ca_key, layout.server_key, layout.client_key, layout.client_pfx, layout.core]
    private += [layout.connection, layout.connection_pfx]
    assert {p.name: _mode(p) for p in private} == {p.name: 0o600 for p in private}
    connection = json.loads(layout.connection.read_text())
    assert connection == {
        "conn_type": "bankapi",
        "port": 9443,
        "host": "https://127.0.0.1:9443/public/gw_banking/v1",
        "login": connection["login"],
        "password": connection["password"],
        "extra": {
            "client_cert": str(layout.client_cert),
            "client_private_key": str(layout.client_key),
            "ca_cert": str(layout.ca_cert),
        },
    }
    pfx = json.loads(layout.connection_pfx.read_text())
    assert set(pfx["extra"]) == {"client_pfx_secret", "client_pfx_password", "ca_cert"}
    assert {k: pfx[k] for k in ("conn_type", "host", "login", "password")} == {
        k: connection[k] for k in ("conn_type", "host", "login", "password")
    }
    bundle = pkcs12.load_pkcs12(layout.client_pfx.read_bytes(), pfx["extra"]["client_pfx_password"].encode())
    client_cert = x509.load_pem_x509_certificate(layout.client_cert.read_bytes())
    assert bundle.cert is not None
    assert bundle.cert.certificate == client_cert
    credential = layout.credential_store().require(connection["login"])
    assert credential.check_secret(connection["password"])
    assert credential.is_bound(fingerprint_of(client_cert))
    assert credential.allows_ip("127.0.0.1")
    assert not credential.allows_ip("192.0.2.1")


def test_init_refuses_to_overwrite_unless_forced(tmp_path):
    first = provision.init(tmp_path)
    login = first.read_connection()["login"]
    with pytest.raises(FileExistsError, match="already holds a sandbox"):
        provision.init(tmp_path)
    assert provision.init(tmp_path, force=True).read_connection()["login"] != login


def test_set_base_url_rewrites_both_connections(tmp_path):
    layout = provision.init(tmp_path)
    url = "https://localhost:1234/public/gw_banking/v1"
    provision.set_base_url(layout, url)
    for connection in (layout.read_connection(), layout.read_connection(pfx=True)):
        assert (connection["host"], connection["port"]) == (url, 1234)
    assert _mode(layout.connection) == 0o600


@pytest.mark.parametrize(
    ("host", "url"),
    [
        pytest.param("127.0.0.1", "https://127.0.0.1:8443/public/gw_banking/v1", id="ipv4"),
        pytest.param("::1", "https://[::1]:8443/public/gw_banking/v1", id="ipv6"),
        pytest.param("localhost", "https://localhost:8443/public/gw_banking/v1", id="name"),
    ],
)
def test_base_url(host, url):
    assert provision.base_url(host, 8443) == url

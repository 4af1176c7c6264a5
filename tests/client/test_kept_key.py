"""The cache key's scrypt kept on the host: the first process derives it, the next ones read it back (real
processes, real files), and nothing kept lets a guess of the secret be tested more cheaply."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import airflow_provider_bankapi
from airflow_provider_bankapi.client.tokens.host import HostTokenStore
from airflow_provider_bankapi.client.tokens.kept_key import kept_cache_key, verifier_file_key
from airflow_provider_bankapi.client.tokens.values import cache_key, cache_salt

REPO_ROOT = Path(airflow_provider_bankapi.__file__).resolve().parent.parent
URL, CLIENT, FINGERPRINT = "https://bank/v1/auth/token-v2", "client", "ab" * 32
SECRET = "s3cr3t-client-secret-value"
KEY_DIGEST = bytes(range(32))

# A new process: the key, and how many scrypts it derived to get it.
CHILD = textwrap.dedent(
    """
    import hashlib, sys
    calls = []
    real = hashlib.scrypt
    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    hashlib.scrypt = counted
    from airflow_provider_bankapi.client.tokens.host import HostTokenStore
    from airflow_provider_bankapi.client.tokens.kept_key import kept_cache_key
    directory, secret, digest = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
    key = kept_cache_key(HostTokenStore(directory), {url!r}, {client!r}, {fingerprint!r}, secret, digest)
    print(key, len(calls))
    """
).format(url=URL, client=CLIENT, fingerprint=FINGERPRINT)


def new_process(directory: Path, secret: str = SECRET, digest: bytes = KEY_DIGEST) -> tuple[str, int]:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(directory), secret, digest.hex()],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=True,
    )
    key, scrypts = done.stdout.split()
    return key, int(scrypts)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "tokens"


def kept_file(directory: Path) -> Path:
    return directory / f"{verifier_file_key(cache_salt(URL, CLIENT, FINGERPRINT))}.verifier"


@pytest.mark.slow
def test_the_second_process_on_a_host_reads_the_kept_derivation_instead_of_deriving_it(directory):
    first = new_process(directory)
    second = new_process(directory)

    assert first == (cache_key(URL, CLIENT, FINGERPRINT, SECRET), 1)  # the same key as ever
    assert second == (first[0], 0)  # no scrypt in the second process
    assert stat.S_IMODE(kept_file(directory).stat().st_mode) == 0o600


@pytest.mark.slow
@pytest.mark.parametrize(
    ("secret", "digest"),
    [
        pytest.param("s3cr3t-client-secret-valuE", KEY_DIGEST, id="another-secret"),
        pytest.param(SECRET, bytes(32), id="another-private-key"),
    ],
)
def test_a_process_with_another_secret_or_key_derives_its_own_key_and_never_takes_the_kept_one(
    directory, secret, digest
):
    right, _ = new_process(directory)

    other, scrypts = new_process(directory, secret, digest)

    assert scrypts == 1
    assert other == cache_key(URL, CLIENT, FINGERPRINT, secret)
    if secret != SECRET:
        assert other != right  # a wrong or rotated secret never shares the right one's token


def test_the_kept_file_holds_no_secret_and_a_check_that_tests_no_guess_without_the_private_key(directory):
    kept_cache_key(HostTokenStore(directory), URL, CLIENT, FINGERPRINT, SECRET, KEY_DIGEST)
    text = kept_file(directory).read_text()
    record = json.loads(text)

    assert SECRET not in text
    assert set(record) == {"format", "verifier", "check"}
    # The name comes from the public parts only; the verifier is the scrypt the key is made of.
    assert kept_file(directory).name.removesuffix(".verifier") == verifier_file_key(
        cache_salt(URL, CLIENT, FINGERPRINT)
    )


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda path: path.write_text("not json"), id="corrupt"),
        pytest.param(lambda path: path.chmod(0o644), id="open-to-others"),
        pytest.param(
            lambda path: path.write_text(path.read_text().replace('"check":"', '"check":"00')), id="bad"
        ),
    ],
)
def test_an_unusable_kept_file_means_one_scrypt_and_a_new_file(directory, spoil, monkeypatch):
    store = HostTokenStore(directory)
    right = kept_cache_key(store, URL, CLIENT, FINGERPRINT, SECRET, KEY_DIGEST)
    spoil(kept_file(directory))
    from airflow_provider_bankapi.client.tokens import values

    values.secret_verifier.cache_clear()  # as in a new process
    derived = []
    real = values.hashlib.scrypt
    monkeypatch.setattr(values.hashlib, "scrypt", lambda *a, **k: derived.append(1) or real(*a, **k))

    assert kept_cache_key(store, URL, CLIENT, FINGERPRINT, SECRET, KEY_DIGEST) == right
    assert derived == [1]
    assert stat.S_IMODE(kept_file(directory).stat().st_mode) == 0o600

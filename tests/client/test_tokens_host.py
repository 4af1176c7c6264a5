"""The host token store on the real file system: private files, atomic writes, untrustworthy files and
directories, the cross-process lock, and single flight across real processes.

The suite runs as root, so "another user" is simulated with os.chown to an unused uid.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import airflow_provider_bankapi
from airflow_provider_bankapi.client.tokens import host as host_store
from airflow_provider_bankapi.client.tokens.cache import MemoryTokenStore, TokenCache
from airflow_provider_bankapi.client.tokens.host import HostTokenStore, default_cache_dir
from airflow_provider_bankapi.client.tokens.values import (
    AccessToken,
    cache_key,
    token_from_record,
    token_record,
)
from airflow_provider_bankapi.errors import ConfigurationError

NOW = 1_800_000_000.0
SECRET = "eyJTOKEN.SECRET-VALUE_0123456789"
KEY = cache_key("https://bank/v1/auth/token-v2", "client", "ab" * 32, "secret")
OTHER_UID = 54321
REPO_ROOT = Path(airflow_provider_bankapi.__file__).resolve().parent.parent
# Python 3.12+ warns on fork() in a threaded process; forking from threads is what Airflow does and what
# these tests are about.
FORK_FROM_THREADS = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


def token(value: str = "tok", *, issued: float = NOW, lifetime: float = 3600) -> AccessToken:
    return AccessToken(value, "Bearer", issued, issued + lifetime)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "airflow-provider-bankapi" / "tokens"


@pytest.fixture
def store(directory: Path) -> HostTokenStore:
    return HostTokenStore(directory, lock_timeout=10)


def token_file(directory: Path) -> Path:
    return directory / f"{KEY}.json"


# -- location and privacy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xdg", "expected"),
    [
        pytest.param("{tmp}/xdg", "{tmp}/xdg/airflow-provider-bankapi/tokens", id="xdg-cache-home"),
        pytest.param(None, "{tmp}/home/.cache/airflow-provider-bankapi/tokens", id="unset"),
        pytest.param("", "{tmp}/home/.cache/airflow-provider-bankapi/tokens", id="empty"),
        pytest.param(
            "relative/cache", "{tmp}/home/.cache/airflow-provider-bankapi/tokens", id="relative-ignored"
        ),
    ],
)
def test_the_default_directory_follows_xdg(monkeypatch, tmp_path, xdg, expected):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg.format(tmp=tmp_path))
    assert default_cache_dir() == Path(expected.format(tmp=tmp_path))
    assert HostTokenStore().directory == default_cache_dir()


def test_files_are_private_and_hold_one_record_per_key(store, directory, tmp_path):
    store.save(KEY, token(SECRET))
    assert mode(directory) == 0o700
    assert mode(directory.parent) == 0o700  # the missing parents were made private too
    assert sorted(path.name for path in directory.iterdir()) == [f"{KEY}.json"]
    assert mode(token_file(directory)) == 0o600
    assert token_file(directory).stat().st_uid == os.geteuid()
    assert json.loads(token_file(directory).read_text())["key"] == KEY
    assert store.load(KEY) == token(SECRET)


def test_files_stay_private_whatever_the_umask(store, directory):
    previous = os.umask(0)
    try:
        store.save(KEY, token())
        with store.lock(KEY):
            pass
    finally:
        os.umask(previous)
    assert {mode(path) for path in directory.iterdir()} == {0o600}
    assert mode(directory) == 0o700


def test_a_missing_file_is_a_miss(store):
    assert store.load(KEY) is None


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("../../etc/passwd", id="traversal"),
        pytest.param("AB" * 32, id="uppercase"),
        pytest.param("ab" * 16, id="short"),
        pytest.param("", id="empty"),
    ],
)
def test_only_hex_digest_keys_name_files(store, key):
    with pytest.raises(ValueError, match="hex digest"):
        store.save(key, token())


# -- atomic writes ---------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_token_and_no_temporary_file(store, directory, monkeypatch):
    store.save(KEY, token("old"))

    def no_rename(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(host_store.os, "replace", no_rename)
    with pytest.raises(OSError, match="No space"):
        store.save(KEY, token("new"))
    monkeypatch.undo()
    assert store.load(KEY).access_token == "old"
    assert [path.name for path in directory.iterdir()] == [f"{KEY}.json"]


def test_a_save_deletes_the_temporary_files_a_killed_writer_left(store, directory):
    store.save(KEY, token("first"))
    stale = directory / f".{KEY}.json.0123456789abcdef.tmp"  # a writer killed before its rename
    recent = directory / f".{KEY}.json.fedcba9876543210.tmp"  # a writer still writing, maybe
    other = directory / f".{'b' * 64}.json.0123456789abcdef.tmp"  # another key's: not this save's
    for path in (stale, recent, other):
        path.write_text("a token")
        path.chmod(0o600)
    an_hour_ago = time.time() - 3600
    for path in (stale, other):
        os.utime(path, (an_hour_ago, an_hour_ago))

    store.save(KEY, token("second"))

    assert not stale.exists()
    assert recent.exists()
    assert other.exists()
    assert store.load(KEY).access_token == "second"


def test_writes_are_synced_before_and_after_the_rename(store, monkeypatch):
    synced = []
    monkeypatch.setattr(host_store.os, "fsync", lambda fd: synced.append(stat.S_IFMT(os.fstat(fd).st_mode)))
    store.save(KEY, token())
    monkeypatch.undo()
    assert synced == [stat.S_IFREG, stat.S_IFDIR]


def test_readers_never_see_a_partial_token_while_writers_replace_it(store, caplog):
    store.save(KEY, token("t-0"))
    stop, seen, errors = threading.Event(), set(), []

    def write(number):
        for count in range(100):
            store.save(KEY, token(f"t-{number}-{count}-" + "x" * 2000))

    def read():
        while not stop.is_set():
            loaded = store.load(KEY)
            if loaded is None:
                errors.append("miss")
            else:
                seen.add(loaded.access_token)

    writers = [threading.Thread(target=write, args=(number,)) for number in range(2)]
    reader = threading.Thread(target=read)
    reader.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    stop.set()
    reader.join()
    assert errors == []
    assert len(seen) > 1  # the reader did overlap the writers
    assert "Ignoring" not in caplog.text


# -- untrustworthy files and directories -----------------------------------------------------------


def _plant_symlink(path: Path) -> None:
    elsewhere = path.parent.parent / "planted.json"
    elsewhere.write_text(token_record(KEY, token("planted")))
    elsewhere.chmod(0o600)
    path.unlink()
    path.symlink_to(elsewhere)


def _plant_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path, 0o600)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        pytest.param(lambda path: path.write_text("{not json"), "not JSON", id="corrupt"),
        pytest.param(lambda path: path.write_text(""), "not JSON", id="empty"),
        pytest.param(lambda path: path.write_bytes(path.read_bytes()[:40]), "not JSON", id="truncated"),
        pytest.param(lambda path: path.write_text(" " * 70_000), "too large", id="huge"),
        pytest.param(
            lambda path: path.write_text(token_record("0" * 64, token("planted"))),
            "another cache key",
            id="other-key",
        ),
        pytest.param(
            lambda path: path.write_text(path.read_text().replace('"expires_at":', '"expires_at":4e12,"_":')),
            "no usable token",
            id="lives-for-decades",
        ),
        pytest.param(
            lambda path: path.write_text(path.read_text().replace('"issued_at":', '"issued_at":"x","_":')),
            "no usable token",
            id="times-as-text",
        ),
        pytest.param(lambda path: path.chmod(0o640), "open to other users", id="group-readable"),
        pytest.param(lambda path: path.chmod(0o604), "open to other users", id="world-readable"),
        pytest.param(
            lambda path: os.chown(path, OTHER_UID, OTHER_UID), "owned by uid 54321", id="foreign-owner"
        ),
        pytest.param(_plant_symlink, "Too many levels of symbolic links", id="symlink"),
        pytest.param(_plant_fifo, "not a regular file", id="fifo"),
    ],
)
def test_an_untrustworthy_token_file_is_ignored_then_replaced(store, directory, caplog, spoil, reason):
    store.save(KEY, token("planted"))
    spoil(token_file(directory))
    assert store.load(KEY) is None
    assert reason in caplog.text
    assert "planted" not in caplog.text
    fetched = TokenCache([store], clock=lambda: NOW).get(KEY, lambda: token(SECRET))
    assert fetched.access_token == SECRET
    replaced = token_file(directory)
    assert stat.S_ISREG(replaced.lstat().st_mode)
    assert (replaced.lstat().st_uid, mode(replaced)) == (os.geteuid(), 0o600)
    assert store.load(KEY).access_token == SECRET
    assert SECRET not in caplog.text


def test_a_corrupt_token_file_is_reported_once_per_call_and_again_when_it_breaks_again(
    store, directory, caplog
):
    def warnings() -> list[str]:
        return [
            r.getMessage() for r in caplog.records if r.getMessage().startswith("Ignoring the token file")
        ]

    cache = TokenCache([store], clock=lambda: NOW)
    store.save(KEY, token("planted"))
    token_file(directory).write_text("{not json")

    assert cache.get(KEY, lambda: token(SECRET)).access_token == SECRET  # looks the key up twice
    assert len(warnings()) == 1
    token_file(directory).write_text("{broken again, later")
    cache.get(KEY, lambda: token(SECRET))
    assert len(warnings()) == 2


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        pytest.param(
            lambda path: os.chown(path, OTHER_UID, OTHER_UID), "is owned by uid 54321", id="foreign-owner"
        ),
        pytest.param(
            lambda path: path.chmod(0o755), "is open to other users (mode 755)", id="world-readable"
        ),
        pytest.param(
            lambda path: path.chmod(0o770), "is open to other users (mode 770)", id="group-writable"
        ),
        pytest.param(lambda path: path.chmod(0o1777), "is open to other users", id="sticky-world-writable"),
    ],
)
def test_an_untrustworthy_directory_is_refused_and_never_repaired(store, directory, caplog, spoil, problem):
    directory.mkdir(parents=True)
    spoil(directory)
    before = directory.stat()
    for operation in (
        lambda: store.load(KEY),
        lambda: store.save(KEY, token()),
        lambda: store.lock(KEY).__enter__(),
    ):
        with pytest.raises(ConfigurationError, match="refusing to keep tokens there") as caught:
            operation()
        assert problem in str(caught.value)
        assert str(directory) in str(caught.value)
        assert caught.value.field == "cache_scope"
    # The cache goes on without the host store: the call succeeds, with a warning naming the directory.
    fetched = TokenCache([MemoryTokenStore(), store], clock=lambda: NOW).get(KEY, lambda: token(SECRET))
    assert fetched.access_token == SECRET
    assert (
        f"Token store host failed to load (ConfigurationError: The token cache directory {directory}"
        in caplog.text
    )
    assert list(directory.iterdir()) == []
    assert (directory.stat().st_mode, directory.stat().st_uid) == (before.st_mode, before.st_uid)
    assert SECRET not in caplog.text


def test_a_symlinked_directory_is_refused(store, directory, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    directory.parent.mkdir(parents=True)
    directory.symlink_to(elsewhere)
    with pytest.raises(ConfigurationError, match="not a directory"):
        store.save(KEY, token())
    assert list(elsewhere.iterdir()) == []


# -- discard ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "discarded", "kept"),
    [
        pytest.param("old", "old", None, id="the-failed-token"),
        pytest.param("newer", "old", "newer", id="a-newer-token-stays"),
        pytest.param("any", None, None, id="unconditional"),
    ],
)
def test_discard_removes_only_the_token_it_names(store, held, discarded, kept):
    store.save(KEY, token(held))
    store.discard(KEY, None if discarded is None else token(discarded))
    assert (store.load(KEY) or token("None")).access_token == str(kept)


def test_discard_keeps_a_token_saved_between_its_check_and_its_delete(store, directory, monkeypatch):
    store.save(KEY, token("old"))
    read = store._read

    def read_then_another_process_saves(*args):
        found = read(*args)
        HostTokenStore(directory).save(KEY, token("newer"))
        return found

    monkeypatch.setattr(store, "_read", read_then_another_process_saves)
    store.discard(KEY, token("old"))
    assert HostTokenStore(directory).load(KEY).access_token == "newer"


def test_discard_removes_an_untrustworthy_file(store, directory):
    store.save(KEY, token())
    token_file(directory).write_text("{not json")
    store.discard(KEY, token("old"))
    assert not token_file(directory).exists()


def test_discard_of_a_missing_file_is_quiet(store):
    store.discard(KEY, token())


# -- the lock --------------------------------------------------------------------------------------


def test_the_lock_excludes_another_holder_and_times_out(store, directory):
    with store.lock(KEY):
        waiting = HostTokenStore(directory, lock_timeout=0.2)
        with pytest.raises(TimeoutError, match="held the token lock"), waiting.lock(KEY):
            pass
    with HostTokenStore(directory, lock_timeout=0.2).lock(KEY):  # released on exit
        pass


def test_a_lock_timeout_costs_a_fetch_not_the_call(store, directory, caplog):
    cache = TokenCache([HostTokenStore(directory, lock_timeout=0.2)], clock=lambda: NOW)
    with store.lock(KEY):
        assert cache.get(KEY, lambda: token("fetched-anyway")).access_token == "fetched-anyway"
    assert "failed to lock (TimeoutError" in caplog.text


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda path: os.chown(path, OTHER_UID, OTHER_UID), id="foreign-owner"),
        pytest.param(lambda path: path.chmod(0o666), id="world-writable"),
        pytest.param(
            lambda path: (path.unlink(), path.symlink_to(path.parent.parent / "elsewhere.lock")), id="symlink"
        ),
    ],
)
def test_an_untrustworthy_lock_file_is_replaced(store, directory, caplog, spoil):
    with store.lock(KEY):
        pass
    lock_file = directory / f"{KEY}.lock"
    spoil(lock_file)
    with store.lock(KEY):
        info = lock_file.lstat()
    assert stat.S_ISREG(info.st_mode)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o600)
    assert "Replacing the token lock file" in caplog.text


@FORK_FROM_THREADS
def test_a_child_forked_under_the_lock_does_not_keep_it(store, directory):
    """Airflow forks task processes: a child that inherits the lock's open file must not hold it after the
    parent lets go (flock locks belong to the open file, which the child shares).
    """
    reader, writer = os.pipe()
    with store.lock(KEY):
        child = os.fork()
        if child == 0:  # pragma: no cover - the child only waits for the parent's word
            os.close(writer)
            os.read(reader, 1)
            os._exit(0)
    os.close(reader)
    try:
        with HostTokenStore(directory, lock_timeout=2).lock(KEY):  # the child is still alive here
            pass
    finally:
        os.write(writer, b"x")
        os.close(writer)
        os.waitpid(child, 0)


@FORK_FROM_THREADS
def test_a_child_forked_while_a_thread_holds_the_memory_lock_gets_fresh_locks():
    memory = MemoryTokenStore(lock_timeout=2)
    memory.save(KEY, token("inherited"))
    holding, release = threading.Event(), threading.Event()

    def hold():
        with memory.lock(KEY):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - judged by its exit status
            try:
                with memory.lock(KEY):
                    os._exit(0 if memory.load(KEY).access_token == "inherited" else 2)
            except TimeoutError:
                os._exit(1)
        _, status = os.waitpid(child, 0)
    finally:
        release.set()
        holder.join()
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_lock_is_per_key(store):
    other = cache_key("https://bank/v1/auth/token-v2", "another-client", "ab" * 32, "secret")
    with store.lock(KEY), HostTokenStore(store.directory, lock_timeout=0.2).lock(other):
        pass


# -- single flight across real processes -----------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from airflow_provider_bankapi.client.tokens.cache import MemoryTokenStore, TokenCache
    from airflow_provider_bankapi.client.tokens.host import HostTokenStore
    from airflow_provider_bankapi.client.tokens.values import AccessToken

    directory, fetch_log, key = sys.argv[1:4]
    cache = TokenCache([MemoryTokenStore(), HostTokenStore(directory)])
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's go, once every process is ready

    def fetch():
        handle = os.open(fetch_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(handle, f"{os.getpid()}\\n".encode())
        os.close(handle)
        time.sleep(0.5)  # a slow bank: every other process arrives while this one fetches
        now = time.time()
        return AccessToken(f"token-from-{os.getpid()}", "Bearer", now, now + 3600)

    print(cache.get(key, fetch).access_token, flush=True)
    """
)


def _stale_file(directory: Path) -> None:
    HostTokenStore(directory).save(KEY, token("stale", issued=time.time() - 3500))


def _corrupt_file(directory: Path) -> None:
    directory.mkdir(mode=0o700)
    token_file(directory).write_text("{corrupt")
    token_file(directory).chmod(0o600)


@pytest.mark.slow  # twelve processes
@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(lambda directory: None, id="cold-cache"),
        pytest.param(_stale_file, id="stale-token-on-disk"),
        pytest.param(_corrupt_file, id="corrupt-file-on-disk"),
    ],
)
def test_twelve_processes_started_together_fetch_one_token(tmp_path, prepare):
    directory = tmp_path / "tokens"
    prepare(directory)
    fetch_log = tmp_path / "fetches.log"
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(directory), str(fetch_log), KEY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(12)
    ]
    try:
        assert [child.stdout.readline().strip() for child in children] == ["ready"] * 12
        for child in children:  # all are waiting on stdin now: release them at once
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=120)[0].strip() for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    fetchers = fetch_log.read_text().split()
    assert len(fetchers) == 1
    assert outputs == [f"token-from-{fetchers[0]}"] * 12
    assert [child.returncode for child in children] == [0] * 12
    assert HostTokenStore(directory).load(KEY).access_token == outputs[0]


class SharedVariableStore:
    """Like the Variable store of cache_scope=cluster: shared by hosts, no lock, no compare-and-set."""

    name = "cluster"

    def __init__(self) -> None:
        self.records: dict[str, str] = {}

    def load(self, key):
        record = self.records.get(key)
        return None if record is None else token_from_record(key, record)

    def save(self, key, token):
        self.records[key] = token_record(key, token)

    def discard(self, key, token=None):
        self.records.pop(key, None)

    def lock(self, key):
        return contextlib.nullcontext()


def test_behind_host_locks_a_lockless_cluster_store_costs_at_most_one_fetch_per_host(tmp_path):
    cluster, fetched = SharedVariableStore(), []
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    start = threading.Barrier(8)
    results = []

    def fetch():
        fetched.append(1)
        time.sleep(0.3)  # a slow bank: every other worker arrives meanwhile
        return token(f"token-{threading.get_ident()}", issued=time.time())

    def task_process(number):
        # A process of its own: a private memory store, the host's files, the cluster store.
        cache = TokenCache([MemoryTokenStore(), HostTokenStore(hosts[number % 2]), cluster])
        start.wait()
        results.append(cache.get(KEY, fetch).access_token)

    threads = [threading.Thread(target=task_process, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 8
    assert 1 <= len(fetched) <= len(hosts)
    assert len(set(results)) == len(fetched)


def test_the_cache_logs_nothing_secret_on_the_host_path(store, directory, caplog):
    caplog.set_level(logging.DEBUG)
    store.save(KEY, token(SECRET))
    token_file(directory).chmod(0o644)
    cache = TokenCache([MemoryTokenStore(), store], clock=lambda: NOW)
    fetched = cache.get(KEY, lambda: token(SECRET + "-2"))
    cache.get(KEY, lambda: token(SECRET + "-3"), refused=fetched)
    assert caplog.records
    assert SECRET not in caplog.text


def test_flock_is_what_holds_the_lock(store, directory):
    """The lock file is an flock target that other tools (and the lead's sandbox test) can inspect."""
    with store.lock(KEY):
        handle = os.open(directory / f"{KEY}.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(handle)

"""The ``host`` token store: files shared by every process of one user on one machine.

Where: :func:`default_cache_dir`, that is ``$XDG_CACHE_HOME/airflow-provider-bankapi/tokens``, or
``~/.cache/airflow-provider-bankapi/tokens`` when ``XDG_CACHE_HOME`` is unset or not absolute (the XDG
base directory rules). One ``<key>.json`` per cache key holds the token and its expiry; one ``<key>.lock``
beside it is the cross-process lock (``flock``), so N processes on a cold cache fetch one token. One
``<name>.verifier`` per credential keeps the slow part of its cache key (see ``kept_key``).

A file holds a live token, so it is treated like a private key:

- the directory is 0700 and must be a real directory owned by this user; one that is foreign-owned,
  open to group or others, or a symbolic link is **refused, never repaired** (someone else may have put
  entries there, or set the mode on purpose): every operation raises :class:`ConfigurationError` naming
  the directory and the fix, and :class:`TokenCache` carries on without the host store, with a warning
  (tokens are then shared within each process only);
- files are created 0600 and written atomically (a temporary file in the same directory, ``fsync``,
  ``os.replace``, ``fsync`` of the directory), so a reader sees the old token or the new one, whole;
  the temporary file of a writer killed mid-write (it may hold a token) is deleted by the key's next
  save once it is a minute old;
- a token file that is corrupt, written for another key, foreign-owned, open to others, not a regular
  file, or a symbolic link is ignored with a warning (never its content) and replaced by the next save;
  a lock file in such a state is replaced at once;
- every file is opened relative to the directory's descriptor with ``O_NOFOLLOW``, so a path swapped
  after the directory was checked cannot redirect a read or a write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_bankapi.client.tokens.values import token_from_record, token_record
from airflow_provider_bankapi.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_bankapi.client.tokens.values import AccessToken

log = logging.getLogger(__name__)

APP_DIRECTORY = "airflow-provider-bankapi"
#: Seconds to wait for another process's fetch before going on without the lock; longer than the
#: transport's worst case for one token call (four attempts with timeouts and backoff).
DEFAULT_LOCK_TIMEOUT = 300.0
_MAX_RECORD_BYTES = 64 * 1024
#: A temporary file this old was left by a writer that died (a write takes milliseconds).
_STALE_TEMPORARY_SECONDS = 60.0
_KEY = re.compile(r"[0-9a-f]{64}")
_OPEN_TO_OTHERS = stat.S_IRWXG | stat.S_IRWXO
# Reasons to replace a lock file we cannot open safely: a symbolic link (ELOOP), someone else's file
# (EACCES), a directory (EISDIR), a FIFO with no peer (ENXIO).
_UNUSABLE = (errno.ELOOP, errno.EACCES, errno.EISDIR, errno.ENXIO)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/airflow-provider-bankapi/tokens``, else ``~/.cache/airflow-provider-bankapi/tokens``.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG base directory specification requires.
    """
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / APP_DIRECTORY / "tokens"


def _untrusted(info: os.stat_result) -> str | None:
    """Why a file cannot be trusted with a token, or None."""
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if info.st_uid != os.geteuid():
        return f"it is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    if info.st_mode & _OPEN_TO_OTHERS:
        return f"it is open to other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _file_name(key: str, suffix: str) -> str:
    # Keys are SHA-256 hex digests (cache_key): checking it keeps any other string out of the file system.
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError("a token cache key is a SHA-256 hex digest (64 lowercase hex digits)")
    return key + suffix


def _same_file(first: os.stat_result, second: os.stat_result) -> bool:
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


class HostTokenStore:
    """Tokens in private files of one directory, shared by every process of this user on this machine.

    :param directory: where the files go (default: :func:`default_cache_dir`); created 0700 if missing.
    :param lock_timeout: seconds to wait for another process's fetch before going on without the lock
        (None: wait for ever).
    """

    name = "host"

    def __init__(
        self, directory: Path | str | None = None, *, lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT
    ) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.lock_timeout = lock_timeout
        # What was last reported about each file: a cache looks a key up twice per fetch (before and
        # under the lock), and one bad file is worth one warning until it changes.
        self._ignored: dict[str, tuple[str, tuple[int, ...] | None]] = {}

    def __repr__(self) -> str:
        return f"HostTokenStore({str(self.directory)!r})"

    # -- the directory ------------------------------------------------------------------------------

    def _create(self) -> None:
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            return  # checked by _opened, whoever made it
        except FileNotFoundError:
            missing = [self.directory, *(p for p in self.directory.parents if not p.exists())]
            for path in reversed(missing):  # parents first, each private (XDG: create missing ones 0700)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(path, 0o700)

    def _refuse(self, problem: str, fix: str) -> ConfigurationError:
        return ConfigurationError(
            f"The token cache directory {self.directory} {problem}; refusing to keep tokens there.",
            field="cache_scope",
            hint=f"{fix} Or set XDG_CACHE_HOME to a private directory, or use cache_scope=process.",
        )

    @contextlib.contextmanager
    def _opened(self) -> Iterator[int]:
        """The checked directory, as a descriptor every file operation is relative to."""
        self._create()
        try:
            directory = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self._refuse("is not a directory (a symbolic link or a file)", "Remove it.") from None
            raise
        try:
            info = os.fstat(directory)
            if info.st_uid != os.geteuid():
                raise self._refuse(
                    f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})", "Remove it."
                )
            if info.st_mode & _OPEN_TO_OTHERS:
                raise self._refuse(
                    f"is open to other users (mode {stat.S_IMODE(info.st_mode):o})",
                    f"Run chmod 700 {self.directory} if nobody else could have written there, or remove it.",
                )
            yield directory
        finally:
            os.close(directory)

    # -- files --------------------------------------------------------------------------------------

    def _write(self, directory: int, name: str, data: bytes) -> None:
        """Atomically make ``name`` a new 0600 file holding ``data``, replacing whatever was there."""
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        handle = os.open(temporary, flags, 0o600, dir_fd=directory)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(handle, view) :]
                os.fsync(handle)
            finally:
                os.close(handle)
            os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=directory)
            raise
        os.fsync(directory)  # the rename itself survives a crash
        self._sweep(directory, name)

    def _sweep(self, directory: int, name: str) -> None:
        """Delete the temporary files of ``name`` that writers killed mid-write left behind."""
        prefix, stale_before = f".{name}.", time.time() - _STALE_TEMPORARY_SECONDS
        with os.scandir(directory) as entries:
            for entry in entries:
                if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
                    continue
                with contextlib.suppress(OSError):  # another process's sweep may have won
                    if entry.stat(follow_symlinks=False).st_mtime < stale_before:
                        os.unlink(entry.name, dir_fd=directory)

    def _read(self, directory: int, key: str) -> tuple[AccessToken | None, os.stat_result | None]:
        """The token in the key's file (or None, with a warning if the file is untrustworthy), and the
        file's identity (to delete exactly that file).
        """
        name = _file_name(key, ".json")
        raw, info = self._read_private(directory, name, "a token record")
        if raw is None:
            return None, info
        try:
            return token_from_record(key, raw), info
        except ValueError as exc:  # its message never holds the token
            self._ignore(name, str(exc), info)
            return None, info

    def _read_private(
        self, directory: int, name: str, holding: str
    ) -> tuple[bytes | None, os.stat_result | None]:
        """The content of a private file of the directory (None when it is missing, or untrustworthy, with
        a warning), and the file's identity.
        """
        try:
            handle = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory
            )
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            self._ignore(name, exc.strerror or "it cannot be opened", None)
            return None, None
        with os.fdopen(handle, "rb") as stream:
            info = os.fstat(handle)
            reason = _untrusted(info)
            if reason is not None:
                self._ignore(name, reason, info)
                return None, info
            raw = stream.read(_MAX_RECORD_BYTES + 1)
        if len(raw) > _MAX_RECORD_BYTES:
            self._ignore(name, f"it is too large to be {holding}", info)
            return None, info
        return raw, info

    def _ignore(self, name: str, reason: str, info: os.stat_result | None) -> None:
        version = None if info is None else (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
        if self._ignored.get(name) == (reason, version):
            return
        self._ignored[name] = (reason, version)
        log.warning("Ignoring the token file %s: %s. It will be replaced.", self.directory / name, reason)

    # -- the TokenStore protocol --------------------------------------------------------------------

    def load(self, key: str) -> AccessToken | None:
        with self._opened() as directory:
            return self._read(directory, key)[0]

    def save(self, key: str, token: AccessToken) -> None:
        name = _file_name(key, ".json")
        with self._opened() as directory:
            self._write(directory, name, token_record(key, token).encode("utf-8"))

    def discard(self, key: str, token: AccessToken | None = None) -> None:
        """Delete the key's file; given ``token``, only while the file still holds that token."""
        name = _file_name(key, ".json")
        with self._opened() as directory:
            current, seen = self._read(directory, key)
            if token is not None and current is not None and current.access_token != token.access_token:
                return  # another process already saved a newer token: keep it
            try:
                now_there = os.stat(name, dir_fd=directory, follow_symlinks=False)
                if seen is not None and not _same_file(now_there, seen):
                    return  # replaced since we read it: that is a newer token
                os.unlink(name, dir_fd=directory)
            except FileNotFoundError:
                pass

    def load_private(self, name: str) -> bytes | None:
        """The content of the private file ``<name>.verifier`` (the cache key's kept derivation), or None.

        :param name: 64 lowercase hex digits.
        """
        with self._opened() as directory:
            return self._read_private(directory, _file_name(name, ".verifier"), "a kept verifier")[0]

    def save_private(self, name: str, data: bytes) -> None:
        """Atomically make ``<name>.verifier`` a new private file holding ``data``."""
        with self._opened() as directory:
            self._write(directory, _file_name(name, ".verifier"), data)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """An exclusive lock on ``key`` across the processes (and threads) of this machine.

        :raises TimeoutError: another holder kept it longer than ``lock_timeout``.
        """
        name = _file_name(key, ".lock")
        with self._opened() as directory:
            handle = self._acquire(directory, name)
        try:
            yield
        finally:
            # Unlock explicitly: a child forked meanwhile shares this open file, and closing our
            # descriptor alone would leave the lock held by the child's copy.
            try:
                fcntl.flock(handle, fcntl.LOCK_UN)
            finally:
                os.close(handle)

    def _acquire(self, directory: int, name: str) -> int:
        deadline = None if self.lock_timeout is None else time.monotonic() + self.lock_timeout
        while True:
            handle, opened = self._open_lock_file(directory, name)
            try:
                self._flock(handle, deadline)
                # Locked; but if the file was replaced meanwhile, the lock that counts is on the new one.
                if _same_file(os.stat(name, dir_fd=directory, follow_symlinks=False), opened):
                    return handle
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(handle)
                raise
            os.close(handle)

    def _open_lock_file(self, directory: int, name: str) -> tuple[int, os.stat_result]:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        for _ in range(5):
            try:
                handle = os.open(name, flags, 0o600, dir_fd=directory)
            except OSError as exc:
                if exc.errno not in _UNUSABLE:
                    raise
                reason = exc.strerror or "it cannot be opened"
            else:
                info = os.fstat(handle)
                untrusted = _untrusted(info)
                if untrusted is None:
                    return handle, info
                os.close(handle)
                reason = untrusted
            # Anyone who can hold a lock file can stall every fetch: replace one we did not make.
            log.warning("Replacing the token lock file %s: %s.", self.directory / name, reason)
            self._write(directory, name, b"")
        raise OSError(f"could not make a trustworthy lock file {self.directory / name}")

    def _flock(self, handle: int, deadline: float | None) -> None:
        if deadline is None:
            fcntl.flock(handle, fcntl.LOCK_EX)
            return
        pause = 0.002
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    # TimeoutError is an OSError: the cache goes on without this lock.
                    raise TimeoutError(
                        f"another process held the token lock in {self.directory} for more than "
                        f"{self.lock_timeout} s"
                    ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

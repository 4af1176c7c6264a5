"""The ``host`` token store: files that every process of one machine (one user) shares.

Files hold a live token, so they are treated like a private key: a 0700 directory, 0600 files created
with that mode, written atomically, and anything not owned by us or open to others is never trusted.
A per-key ``flock`` makes N processes on a cold cache fetch one token between them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_bankapi.client.tokens import AccessToken
from airflow_provider_bankapi.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)

APP_DIRECTORY = "airflow-provider-bankapi"


def default_cache_dir() -> Path:
    """Host tokens live in ``$XDG_CACHE_HOME/airflow-provider-bankapi/tokens`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / APP_DIRECTORY / "tokens"


def _private(info: os.stat_result) -> bool:
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)


class HostTokenStore:
    """Tokens in private files of one directory, shared by every process of this user on this machine.

    :param directory: where the files go (default: :func:`default_cache_dir`).
    """

    name = "host"

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def _ready_directory(self) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise ConfigurationError(
                f"The token cache directory {self.directory} is not a directory owned by this user; "
                "refusing to keep tokens there.",
                field="cache_scope",
                hint="Remove it, or set XDG_CACHE_HOME to a private location, or use cache_scope=process.",
            )
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.chmod(self.directory, 0o700)  # ours, merely too open: close it rather than give up
        return self.directory

    def _path(self, key: str, suffix: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ValueError("a token cache key is a hex digest")
        return self._ready_directory() / f"{key}{suffix}"

    def load(self, key: str) -> AccessToken | None:
        path = self._path(key, ".json")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("Ignoring token file %s (%s); it will be replaced.", path, exc.strerror)
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or not _private(info):
                log.warning(
                    "Ignoring token file %s: not a private file of this user; it will be replaced.", path
                )
                return None
            raw = handle.read(64 * 1024)
        try:
            record = json.loads(raw)
            if record.pop("key") != key:
                raise ValueError("key mismatch")
            return AccessToken(**record)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("Ignoring corrupt token file %s; it will be replaced.", path)
            return None

    def save(self, key: str, token: AccessToken) -> None:
        path = self._path(key, ".json")
        record = {
            "key": key,
            "access_token": token.access_token,
            "token_type": token.token_type,
            "issued_at": token.issued_at,
            "expires_at": token.expires_at,
        }
        # mkstemp creates the file 0600; rename makes the write atomic for every reader.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def discard(self, key: str, token: AccessToken | None = None) -> None:
        if token is not None:
            current = self.load(key)
            if current is not None and current.access_token != token.access_token:
                return  # someone already replaced it with a newer token
        with contextlib.suppress(FileNotFoundError):
            self._path(key, ".json").unlink()

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """An exclusive lock on this key across the processes of this machine."""
        path = self._path(key, ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

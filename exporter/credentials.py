"""A target's credentials as they are now: secrets given as ``{file: PATH}`` are read again
when their file changes, so a rotated Kubernetes Secret (its files swapped at once through
the ``..data`` symlink) or a rewritten credentials file is used from the next request on,
without a restart or a SIGHUP.

Each ``current()`` (once per request signed, or per IAM token fetched) stats the target's
secret files: a few system calls, on a tmpfs for a mounted Secret. When a file's identity,
size or modification time differs from the last read, and no file was modified in the last
``settle`` seconds (an AK written before its SK must not be paired with the old SK: one
wrong signature is a refusal, five lock the key), every file secret of the target is read
again and checked as at load (readable, UTF-8, not empty, no control characters). All
good: the new credentials are used at once. Any bad: the previous credentials stay in use,
``credentials_reload_failed`` is logged (the file and why, never a value) and ``succeeded``
is False until a later change reads well; the same bad change is not read or logged again.

A refusal (``refused()``: ModelArts answered 401, or IAM refused the password) makes the
next ``current()`` read the files once even if they look unchanged: a file rewritten in
place keeping its size and modification time (an AK is always 20 characters) is then still
picked up, by the next cycle, with no request spent. ``credentials_reread_after_refusal``
says whether the files held other credentials; if they did not, the secret itself is wrong.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Generic, TypeVar

import structlog

from exporter.config import Credentials, FileReader, Secret, read_secret_file

__all__ = ["FileIdentity", "RotatingCredentials", "file_identity", "secret_files"]

C = TypeVar("C", bound=Credentials)
#: What says a file changed: (device, inode, size, modification time in ns); None when the
#: file cannot be stat'ed (a swap in progress, or gone).
FileIdentity = tuple[int, int, int, int] | None


def file_identity(path: str) -> FileIdentity:
    """``path``'s identity, following symlinks (a Kubernetes Secret's files are symlinks
    into the ``..data`` directory that a rotation swaps)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


def secret_files(credentials: Credentials) -> dict[str, str]:
    """Field name → file path, for each secret of ``credentials`` read from a file."""
    return {
        f.name: value.file
        for f in fields(credentials)
        if isinstance(value := getattr(credentials, f.name), Secret) and value.file
    }


class RotatingCredentials(Generic[C]):
    """``credentials``, with their file secrets read again when the files change."""

    def __init__(
        self,
        credentials: C,
        *,
        log: structlog.typing.FilteringBoundLogger,
        read_file: FileReader = lambda path: Path(path).read_text(encoding="utf-8"),
        identity: Callable[[str], FileIdentity] = file_identity,
        clock: Callable[[], float] = time.time,
        settle: float = 1.0,
    ) -> None:
        self._credentials = credentials
        self._files = secret_files(credentials)
        self._read_file = read_file
        self._identity = identity
        self._clock = clock
        self._settle = settle
        self._log = log
        self._seen = self._identities()
        self._recheck = False
        #: False from a change that could not be read until one that could.
        self.succeeded = True

    @property
    def rotating(self) -> bool:
        """Whether any secret comes from a file (otherwise ``current`` never changes)."""
        return bool(self._files)

    def _identities(self) -> dict[str, FileIdentity]:
        return {path: self._identity(path) for path in set(self._files.values())}

    def current(self) -> C:
        """The credentials to use now, re-read first if a secret file changed."""
        if not self._files:
            return self._credentials
        seen = self._identities()
        if (self._recheck or seen != self._seen) and not self._settling(seen):
            forced = self._recheck
            self._seen, self._recheck = seen, False
            self._reload(forced)
        return self._credentials

    def refused(self) -> None:
        """The credentials in use were refused: read the files once more before the next
        request, even if they look unchanged (only a flag: refusals are never retried)."""
        self._recheck = bool(self._files)

    def _settling(self, seen: dict[str, FileIdentity]) -> bool:
        """Whether a file was modified less than ``settle`` seconds ago (others may follow)."""
        newest = max((found[3] for found in seen.values() if found is not None), default=0)
        return self._clock() - newest / 1e9 < self._settle

    def _reload(self, forced: bool) -> None:
        try:
            secrets = {
                name: read_secret_file(path, self._read_file) for name, path in self._files.items()
            }
        except ValueError as error:
            self.succeeded = False
            self._log.warning("credentials_reload_failed", error=str(error))
            return
        changed = any(
            secret != getattr(self._credentials, name) for name, secret in secrets.items()
        )
        # mypy cannot check keywords of a dataclass behind a TypeVar; secret_files gave them.
        self._credentials = replace(self._credentials, **secrets)  # type: ignore[arg-type]
        self.succeeded = True
        files = sorted(set(self._files.values()))
        if forced:
            self._log.info("credentials_reread_after_refusal", changed=changed, files=files)
        elif changed:
            self._log.info("credentials_reloaded", files=files)

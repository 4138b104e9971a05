"""Configuration reloads: ``Reloader`` loads the config file on SIGHUP or POST /-/reload
and applies it to a ``Reloadable`` (the running exporter); ``shared_settings`` and
``same_credentials`` say what a new config changes for a target.

A file that ``config.load`` rejects changes nothing: the old config keeps running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from structlog.typing import FilteringBoundLogger

from exporter.config import Config, Target
from exporter.config import load as load_config
from exporter.errors import ConfigError

__all__ = ["Changes", "Reloadable", "Reloader", "same_credentials", "shared_settings"]

#: How long POST /-/reload waits for the reload (normally milliseconds).
RELOAD_TIMEOUT = 30.0
STOPPING = "the exporter is stopping"

T = TypeVar("T")


@dataclass(frozen=True)
class Changes:
    """What a new config changed, by project: kept as it was, rebuilt, added or removed."""

    unchanged: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def shared_settings(config: Config) -> tuple[object, ...]:
    """The settings that every target is built with: when one changes, all are rebuilt."""
    return (
        config.poll_interval,
        config.stale_after,
        config.jitter,
        config.timeout,
        config.retry,
        config.max_response_bytes,
    )


def same_credentials(old: Target, new: Target) -> bool:
    """Whether a rebuilt target signs the same way at the same endpoints: it then waits out
    the refusal backoff of the one it replaces."""
    return (old.credentials, old.endpoint, old.iam_endpoint) == (
        new.credentials,
        new.endpoint,
        new.iam_endpoint,
    )


class Reloadable(Protocol):
    """What a reload needs of the running exporter (``exporter.app.Exporter`` is one)."""

    async def in_worker(self, function: Callable[[], T]) -> T:
        """``function()`` off the event loop (the config file is read there)."""
        ...

    async def apply(self, config: Config, log: FilteringBoundLogger | None = None) -> Changes:
        """Poll as ``config`` says from now on."""
        ...

    def config_reloaded(self, *, successful: bool) -> None:
        """Publish whether the reload succeeded."""
        ...


class Reloader:
    """Reloads the config file into ``exporter``: on SIGHUP, and on POST /-/reload with
    ``--web.enable-lifecycle``. One reload at a time, in the order asked.

    A file that ``config.load`` rejects changes nothing: the old config keeps running, the
    error is logged (``config_reload_failed``, with the key path, never a value) and
    ``modelarts_exporter_config_last_reload_successful`` turns 0.
    """

    def __init__(
        self,
        exporter: Reloadable,
        path: str,
        log: FilteringBoundLogger,
        log_for: Callable[[Config], FilteringBoundLogger] | None = None,
    ) -> None:
        self._exporter = exporter
        self._path = path
        self._log = log
        #: A logger that also masks the new config's secrets, for what the reload wires.
        self._log_for = log_for
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[str | None]] = set()
        self._closed = False

    async def reload(self) -> str | None:
        """Load the file and apply it; None when it is in effect, else the error."""
        async with self._lock:
            if self._closed:
                raise RuntimeError(STOPPING)
            try:
                config = await self._exporter.in_worker(partial(load_config, self._path))
            except ConfigError as exc:
                self._log.error(
                    "config_reload_failed", file=self._path, key=exc.path, error=str(exc)
                )
                self._exporter.config_reloaded(successful=False)
                return str(exc)
            log = self._log if self._log_for is None else self._log_for(config)
            try:
                changes = await self._exporter.apply(config, log)
            except Exception as exc:  # noqa: BLE001 - a bug in a reload must not stop polling
                self._log.exception("config_reload_failed", file=self._path, key="")
                self._exporter.config_reloaded(successful=False)
                return f"internal error: {exc!r}"
            self._log = log
            self._exporter.config_reloaded(successful=True)
            log.info(
                "config_reloaded",
                file=self._path,
                targets=len(config.targets),
                **{name: len(projects) for name, projects in vars(changes).items()},
            )
            return None

    def request(self) -> asyncio.Task[str | None]:
        """Reload in the background (SIGHUP)."""
        task = self._loop.create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def on_signal(self) -> None:
        if not self._closed:
            self.request()

    def from_thread(self) -> str | None:
        """POST /-/reload, in a server thread: reload in the event loop and wait for it.
        Raises ``RuntimeError`` when the exporter is stopping."""
        if self._closed:
            raise RuntimeError(STOPPING)

        async def requested() -> str | None:
            return await self.request()

        future = asyncio.run_coroutine_threadsafe(requested(), self._loop)
        try:
            return future.result(timeout=RELOAD_TIMEOUT)
        except concurrent.futures.CancelledError:
            raise RuntimeError(STOPPING) from None

    async def close(self) -> None:
        """Reload no more: the exporter is stopping. Reloads under way are cancelled."""
        self._closed = True
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _done(self, task: asyncio.Task[str | None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: STOPPING needs no "never retrieved" warning

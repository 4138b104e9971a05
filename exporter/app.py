"""Wiring: config → clients → pollers → exposition cache → server, and the run loop.

No logic of its own beyond putting the pieces together: each target is wired by
``exporter.wiring``, a reload is read by ``exporter.reload.Reloader`` and applied by
``Exporter.apply`` (which keeps what did not change), and on stop everything shuts down
in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import httpx
from structlog.typing import FilteringBoundLogger

from exporter import __version__
from exporter.clock import Clock, SystemClock
from exporter.config import Config
from exporter.exposition import ExpositionCache, process_metrics
from exporter.models import ConfigStatus, Snapshot
from exporter.poller import Poller
from exporter.reload import Changes, Reloader, same_credentials, shared_settings
from exporter.selfmetrics import RequestLedger
from exporter.server import MetricsServer
from exporter.sharding import UNSHARDED, Shard
from exporter.webconfig import WebConfigFile
from exporter.wiring import Wired, Wiring

__all__ = ["MAX_THREADS", "Exporter", "build", "run"]


T = TypeVar("T")

#: Threads of the event loop's default pool, which does the name lookups of new
#: connections: a fixed few, not asyncio's default of up to min(32, CPUs + 4).
WORKER_THREADS = 4
#: Threads in all: main, HTTP server, the exporter's own worker (renders and config
#: loads, so that a slow name lookup never holds them up) and the default pool; plus one
#: per open connection to /metrics.
MAX_THREADS = 3 + WORKER_THREADS


@dataclass
class Exporter:
    """A wired exporter: poll with ``poller``, serve ``cache``; ``apply()`` a new config;
    ``close()`` when done."""

    poller: Poller
    cache: ExpositionCache
    config: Config
    _wiring: Wiring
    _wired: dict[str, Wired]
    _worker: concurrent.futures.ThreadPoolExecutor

    async def in_worker(self, function: Callable[[], T]) -> T:
        """``function()`` in the exporter's own worker thread (renders, config loads)."""
        return await _run_in(self._worker, function)

    @property
    def clients(self) -> list[httpx.AsyncClient]:
        return [client for wired in self._wired.values() for client in wired.clients]

    def ready(self) -> bool:
        return self.poller.ready()

    def config_reloaded(self, *, successful: bool) -> None:
        """Publish whether a configuration reload succeeded (``Reloader``)."""
        self.poller.config_reloaded(successful=successful)

    async def apply(self, config: Config, log: FilteringBoundLogger | None = None) -> Changes:
        """Poll as ``config`` says from now on (a reload), with the same shard.

        A target whose config and the shared settings are unchanged keeps its poller, loop,
        client and data. Any other is rebuilt, and wired with ``log`` if given; its items
        that remain keep their data, and with unchanged credentials it still waits out a
        refusal backoff. Removed targets' series leave. The old clients are closed.
        """
        if log is not None:
            self._wiring.log = log
        same_settings = shared_settings(config) == shared_settings(self.config)
        wired: dict[str, Wired] = {}
        for target in config.targets:
            old = self._wired.get(target.project_id)
            if old is not None and same_settings and old.target == target:
                wired[target.project_id] = old
            elif new := self._wiring.target(target, config):
                if old is not None and same_credentials(old.target, target):
                    new.poller.inherit_backoff(old.poller)
                wired[target.project_id] = new
        await self.poller.replace_targets(
            [w.poller for w in wired.values()],
            interval=config.poll_interval,
            stale_after=config.stale_after,
            jitter=config.jitter,
        )
        retired, self._wired, self.config = self._wired, wired, config
        for project, old in retired.items():
            if wired.get(project) is not old:
                await _close(old.clients)
        return Changes(
            unchanged=tuple(p for p, w in wired.items() if retired.get(p) is w),
            rebuilt=tuple(p for p, w in wired.items() if p in retired and retired[p] is not w),
            added=tuple(p for p in wired if p not in retired),
            removed=tuple(p for p in retired if p not in wired),
        )

    async def close(self) -> None:
        await _close(self.clients)
        self._worker.shutdown(wait=False, cancel_futures=True)


async def _run_in(executor: concurrent.futures.Executor, function: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(executor, function)


async def _close(clients: Iterable[httpx.AsyncClient]) -> None:
    for client in clients:
        await client.aclose()


def build(
    config: Config,
    log: FilteringBoundLogger,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    shard: Shard = UNSHARDED,
) -> Exporter:
    """Wire an exporter for ``config``; ``transport`` replaces the network in tests.

    Only the items ``shard`` owns are polled. A target none of whose items it owns gets no
    client and no poller, so this exporter publishes nothing for its project, not even
    ``modelarts_up``: that comes from the shards that own its items. A target with
    discovery is polled by every shard: each asks ListPools and keeps the pools it owns.
    """
    clock = clock or SystemClock()
    ledger = RequestLedger()
    wiring = Wiring(clock, ledger, shard, transport, log)
    built = (wiring.target(target, config) for target in config.targets)
    wired = {w.target.project_id: w for w in built if w is not None}
    identity = (shard.index, shard.total)
    loaded = ConfigStatus(last_success=clock.wall())
    initial = Snapshot(config.poll_interval, config.stale_after, shard=identity, config=loaded)
    cache = ExpositionCache(initial, clock.wall, process_metrics())
    worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="exporter-worker")

    async def publish(snapshot: Snapshot) -> None:
        await _run_in(worker, partial(cache.publish, snapshot))

    poller = Poller(
        [w.poller for w in wired.values()],
        interval=config.poll_interval,
        stale_after=config.stale_after,
        jitter=config.jitter,
        publish=publish,
        clock=clock,
        ledger=ledger,
        log=log,
        shard=identity,
    )
    return Exporter(poller, cache, config, wiring, wired, worker)


async def run(
    config: Config,
    listen_address: str,
    log: FilteringBoundLogger,
    *,
    shard: Shard = UNSHARDED,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[int], None] | None = None,
    web: WebConfigFile | None = None,
    config_file: str | None = None,
    enable_lifecycle: bool = False,
    log_for: Callable[[Config], FilteringBoundLogger] | None = None,
) -> int:
    """Serve /metrics and poll until SIGTERM/SIGINT (or ``stop``); return the exit code.

    With ``config_file``, SIGHUP reloads it, and so does POST /-/reload with
    ``enable_lifecycle`` (else answered 403). ``log_for(config)`` makes the logger of what
    a reload wires, masking that config's secrets.
    """
    stop = stop or asyncio.Event()
    exporter = build(config, log, shard=shard)
    reloader = None if config_file is None else Reloader(exporter, config_file, log, log_for)
    lifecycle = reloader.from_thread if reloader is not None and enable_lifecycle else None
    try:
        server = MetricsServer(
            listen_address, exporter.cache.payload, exporter.ready, web, reload=lifecycle, log=log
        )
    except OSError as exc:
        # Named as the operator gave it: the flag and its value, then why.
        error = f"cannot listen on --web.listen-address={listen_address}: {exc.strerror or exc}"
        log.error("listen_failed", listen_address=listen_address, error=error)
        await exporter.close()
        return 1
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="lookup")
    )

    def stop_on(sig: signal.Signals) -> None:
        """The first SIGTERM/SIGINT stops the exporter; later ones change nothing."""
        if not stop.is_set():
            log.info("exporter_stopping", signal=sig.name)
            stop.set()

    handlers: list[tuple[signal.Signals, Callable[[], None]]] = [
        (sig, partial(stop_on, sig)) for sig in (signal.SIGTERM, signal.SIGINT)
    ]
    if reloader is not None:
        handlers.append((signal.SIGHUP, reloader.on_signal))
    for sig, handler in handlers:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
    server.start()
    log.info(
        "exporter_started",
        version=__version__,
        listen_address=listen_address,
        port=server.port,
        targets=len(config.targets),
        poll_interval_seconds=config.poll_interval,
        shard=shard.index,
        total_shards=shard.total,
    )
    if on_listening is not None:
        on_listening(server.port)
    polling = asyncio.create_task(exporter.poller.run(stop))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
    # Stopping: no more reloads; cancelling the poll loops cancels their requests in flight.
    if reloader is not None:
        await reloader.close()
    for task in (polling, stopping):
        task.cancel()
    results = await asyncio.gather(polling, stopping, return_exceptions=True)
    await exporter.close()
    server.stop()
    failures = [r for r in results if isinstance(r, Exception)]
    failure = failures[0] if failures else None
    if failure is not None:
        log.error("exporter_failed", error=repr(failure))
        return 1
    log.info("exporter_stopped")
    return 0

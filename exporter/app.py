"""Wiring: config → clients → pollers → exposition cache → server, and the run loop.

No logic of its own beyond putting the pieces together, rewiring them when the config is
reloaded (``Exporter.apply``), and shutting them down in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import httpx
from structlog.typing import FilteringBoundLogger

from exporter import __version__
from exporter.auth import AkSkAuth, IamTokenAuth, IamTokenSource
from exporter.budget import RequestBudget
from exporter.client import ModelArtsClient
from exporter.config import AkSkCredentials, Config, PasswordCredentials, Target
from exporter.config import load as load_config
from exporter.credentials import RotatingCredentials
from exporter.discovery import PoolDiscovery
from exporter.errors import ConfigError
from exporter.exposition import ExpositionCache, process_metrics
from exporter.metadata import MetadataAuth, MetadataCredentialSource
from exporter.models import Api, ConfigStatus, ItemKey, Snapshot
from exporter.poller import Clock, Poller, RequestLedger, SystemClock, TargetPoller
from exporter.server import MetricsServer
from exporter.sharding import UNSHARDED, Shard
from exporter.webconfig import WebConfigFile

__all__ = ["Changes", "Connection", "Exporter", "Reloader", "build", "connect", "run"]

USER_AGENT = f"modelarts-exporter/{__version__}"
#: The ``api`` label of IAM token requests in ``modelarts_api_requests_total``.
IAM_TOKENS = "iam_tokens"
#: How long POST /-/reload waits for the reload (normally milliseconds).
RELOAD_TIMEOUT = 30.0
STOPPING = "the exporter is stopping"


def items_of(target: Target, shard: Shard = UNSHARDED) -> list[ItemKey]:
    """The items of a target that ``shard`` polls: its pools, then its job types."""
    items = [ItemKey(target.project_id, Api.WORKLOAD_STATISTICS, p) for p in target.pools] + [
        ItemKey(target.project_id, Api.RESOURCE_SPECS, j) for j in target.job_types
    ]
    return [item for item in items if shard.owns(item)]


def discovery_of(target: Target, config: Config, shard: Shard = UNSHARDED) -> PoolDiscovery | None:
    """The target's pool discovery, taking only the pools ``shard`` owns; None if off.

    Discovered data may get as many refresh intervals old as ``stale_after`` allows poll
    intervals: with the defaults (3 x 60 s, refresh 5 min) that is 15 minutes.
    """
    if target.discovery is None:
        return None
    ratio = target.discovery.refresh_interval / config.poll_interval
    return PoolDiscovery(
        target.project_id,
        target.discovery,
        owns=shard.owns,
        slack=max(config.poll_interval / 2, config.jitter),
        stale_after=config.stale_after * ratio,
        poll_interval=config.poll_interval,
    )


def _rate_of(budget: RequestBudget) -> float:
    return budget.effective_rate


#: Awaited with each ModelArts answer as its headers arrive (``connect``'s ``on_response``).
ResponseHook = Callable[[httpx.Response], Awaitable[None]]


def _http_client(
    target: Target,
    config: Config,
    auth: httpx.Auth | None,
    transport: httpx.AsyncBaseTransport | None,
    on_response: ResponseHook | None = None,
) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=target.max_concurrency, max_keepalive_connections=target.max_concurrency
    )
    return httpx.AsyncClient(
        auth=auth,
        timeout=config.timeout,
        limits=limits,
        headers={
            "User-Agent": USER_AGENT,
            "X-Project-Id": target.project_id,
            # Plain bodies: the size cap then bounds memory (no inflating of a gzip bomb).
            "Accept-Encoding": "identity",
        },
        transport=transport,
        follow_redirects=False,
        event_hooks={"response": [] if on_response is None else [on_response]},
    )


#: Time limit of a metadata service request (the SDK's is 3 s to connect, 3 s to read).
METADATA_TIMEOUT = 3.0


@dataclass(frozen=True)
class _Wired:
    """One target's poller and the HTTP clients that it alone uses."""

    target: Target
    poller: TargetPoller
    clients: tuple[httpx.AsyncClient, ...]


@dataclass(frozen=True)
class Changes:
    """What a new config changed, by project: kept as it was, rebuilt, added or removed."""

    unchanged: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def _shared_settings(config: Config) -> tuple[object, ...]:
    """The settings that every target is built with: when one changes, all are rebuilt."""
    return (
        config.poll_interval,
        config.stale_after,
        config.jitter,
        config.timeout,
        config.retry,
        config.max_response_bytes,
    )


def _same_credentials(old: Target, new: Target) -> bool:
    return (old.credentials, old.endpoint, old.iam_endpoint) == (
        new.credentials,
        new.endpoint,
        new.iam_endpoint,
    )


@dataclass(frozen=True)
class Connection:
    """One target's ModelArts client, as :func:`connect` wires it."""

    client: ModelArtsClient
    #: Every HTTP client it uses (ModelArts, and IAM or the metadata service): close them.
    http_clients: tuple[httpx.AsyncClient, ...]
    budget: RequestBudget
    #: Whether the last read of the target's credential files worked (True without).
    credentials_read: Callable[[], bool]
    #: When the credentials in use expire, where that is known (IAM token, metadata).
    credentials_expiry: Callable[[], float | None]


def connect(
    target: Target,
    config: Config,
    *,
    clock: Clock,
    ledger: RequestLedger,
    log: FilteringBoundLogger,
    transport: httpx.AsyncBaseTransport | None = None,
    on_response: ResponseHook | None = None,
) -> Connection:
    """The ModelArts client of ``target``: its credentials (AK/SK, IAM password or the
    metadata service), authentication, HTTP clients, request budget and retries as
    ``config`` says. Requests are counted in ``ledger``; ``on_response`` is awaited with
    every ModelArts answer (not IAM's or the metadata service's) as its headers arrive."""
    clients: list[httpx.AsyncClient] = []
    auth: httpx.Auth
    creds = target.credentials
    credentials_read: Callable[[], bool] = lambda: True  # noqa: E731
    expiry: Callable[[], float | None] = lambda: None  # noqa: E731
    if isinstance(creds, AkSkCredentials):
        signing_keys = RotatingCredentials(creds, log=log)
        credentials_read = lambda: signing_keys.succeeded  # noqa: E731
        auth = AkSkAuth(signing_keys.current, clock.wall, refused=signing_keys.refused)
    elif isinstance(creds, PasswordCredentials):
        password = RotatingCredentials(creds, log=log)
        credentials_read = lambda: password.succeeded  # noqa: E731
        iam_http = _http_client(target, config, None, transport)
        clients.append(iam_http)
        source = IamTokenSource(
            iam_http,
            target.iam_endpoint,
            target.project_id,
            password.current,
            clock.wall,
            observe=partial(ledger.request, target.project_id, IAM_TOKENS),
            refused=password.refused,
        )
        ledger.expect_refusals(target.project_id, IAM_TOKENS)
        expiry = lambda: source.expires_at  # noqa: E731
        auth = IamTokenAuth(source)
    else:
        metadata_http = httpx.AsyncClient(
            timeout=METADATA_TIMEOUT, transport=transport, follow_redirects=False
        )
        clients.append(metadata_http)
        agency = MetadataCredentialSource(metadata_http, creds.url, clock.wall, log)
        expiry = lambda: agency.expires_at  # noqa: E731
        auth = MetadataAuth(agency, clock.wall)
    http = _http_client(target, config, auth, transport, on_response)
    clients.append(http)
    budget = RequestBudget(
        target.requests_per_second,
        target.burst,
        clock=clock.monotonic,
        max_pause=config.retry.max_backoff,
        log=log,
    )
    client = ModelArtsClient(
        http,
        endpoint=target.endpoint,
        project_id=target.project_id,
        timeout=config.timeout,
        retry=config.retry,
        max_body_bytes=config.max_response_bytes,
        observe=partial(ledger.request, target.project_id),
        clock=clock.wall,
        rng=random.Random(),
        # Not the IAM token requests above: another service, about once a day.
        budget=budget,
    )
    return Connection(client, tuple(clients), budget, credentials_read, expiry)


@dataclass
class _Wiring:
    """What every target is wired with; kept to wire the targets of a reloaded config."""

    clock: Clock
    ledger: RequestLedger
    shard: Shard
    transport: httpx.AsyncBaseTransport | None
    log: FilteringBoundLogger

    def target(self, target: Target, config: Config) -> _Wired | None:
        """The client(s) and poller of one target; None if the shard owns none of it."""
        clock, ledger, log, transport = self.clock, self.ledger, self.log, self.transport
        items = items_of(target, self.shard)
        discovery = discovery_of(target, config, self.shard)
        if not items and discovery is None:
            return None
        wired = connect(
            target,
            config,
            clock=clock,
            ledger=ledger,
            log=log.bind(project_id=target.project_id),
            transport=transport,
        )
        poller = TargetPoller(
            target.project_id,
            items,
            wired.client,
            target.max_concurrency,
            clock,
            ledger,
            log,
            request_rate=partial(_rate_of, wired.budget),
            refusal_backoff=config.poll_interval,
            discovery=discovery,
            region=target.region,
            credentials_read=wired.credentials_read,
            credentials_expiry=wired.credentials_expiry,
            attempt_timeout=config.timeout,
        )
        return _Wired(target, poller, wired.http_clients)


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
    _wiring: _Wiring
    _wired: dict[str, _Wired]
    _worker: concurrent.futures.ThreadPoolExecutor

    async def in_worker(self, function: Callable[[], T]) -> T:
        """``function()`` in the exporter's own worker thread (renders, config loads)."""
        return await _run_in(self._worker, function)

    @property
    def clients(self) -> list[httpx.AsyncClient]:
        return [client for wired in self._wired.values() for client in wired.clients]

    def ready(self) -> bool:
        return self.poller.ready()

    async def apply(self, config: Config, log: FilteringBoundLogger | None = None) -> Changes:
        """Poll as ``config`` says from now on (a reload), with the same shard.

        A target whose config and the shared settings are unchanged keeps its poller, loop,
        client and data. Any other is rebuilt, and wired with ``log`` if given; its items
        that remain keep their data, and with unchanged credentials it still waits out a
        refusal backoff. Removed targets' series leave. The old clients are closed.
        """
        if log is not None:
            self._wiring.log = log
        same_settings = _shared_settings(config) == _shared_settings(self.config)
        wired: dict[str, _Wired] = {}
        for target in config.targets:
            old = self._wired.get(target.project_id)
            if old is not None and same_settings and old.target == target:
                wired[target.project_id] = old
            elif new := self._wiring.target(target, config):
                if old is not None and _same_credentials(old.target, target):
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
    wiring = _Wiring(clock, ledger, shard, transport, log)
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


class Reloader:
    """Reloads the config file into ``exporter``: on SIGHUP, and on POST /-/reload with
    ``--web.enable-lifecycle``. One reload at a time, in the order asked.

    A file that ``config.load`` rejects changes nothing: the old config keeps running, the
    error is logged (``config_reload_failed``, with the key path, never a value) and
    ``modelarts_exporter_config_last_reload_successful`` turns 0.
    """

    def __init__(
        self,
        exporter: Exporter,
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
                self._exporter.poller.config_reloaded(successful=False)
                return str(exc)
            log = self._log if self._log_for is None else self._log_for(config)
            try:
                changes = await self._exporter.apply(config, log)
            except Exception as exc:  # noqa: BLE001 - a bug in a reload must not stop polling
                self._log.exception("config_reload_failed", file=self._path, key="")
                self._exporter.poller.config_reloaded(successful=False)
                return f"internal error: {exc!r}"
            self._log = log
            self._exporter.poller.config_reloaded(successful=True)
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

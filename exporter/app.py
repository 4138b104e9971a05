"""Wiring: config → clients → pollers → exposition cache → server, and the run loop.

No logic of its own beyond putting the pieces together and shutting them down in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import httpx
from structlog.typing import FilteringBoundLogger

from exporter import __version__
from exporter.auth import AkSkAuth, IamTokenAuth, IamTokenSource
from exporter.budget import RequestBudget
from exporter.client import ModelArtsClient
from exporter.config import AkSkCredentials, Config, Target
from exporter.discovery import PoolDiscovery
from exporter.exposition import ExpositionCache, process_metrics
from exporter.models import Api, ItemKey, Snapshot
from exporter.poller import Clock, Poller, RequestLedger, SystemClock, TargetPoller
from exporter.server import MetricsServer
from exporter.sharding import UNSHARDED, Shard
from exporter.webconfig import WebConfigFile

__all__ = ["Exporter", "build", "run"]

USER_AGENT = f"modelarts-exporter/{__version__}"
#: The ``api`` label of IAM token requests in ``modelarts_api_requests_total``.
IAM_TOKENS = "iam_tokens"


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


def _http_client(
    target: Target,
    config: Config,
    auth: httpx.Auth | None,
    transport: httpx.AsyncBaseTransport | None,
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
    )


@dataclass
class Exporter:
    """A wired exporter: poll with ``poller``, serve ``cache``; ``close()`` when done."""

    poller: Poller
    cache: ExpositionCache
    clients: list[httpx.AsyncClient]

    def ready(self) -> bool:
        return self.poller.ready()

    async def close(self) -> None:
        for client in self.clients:
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
    clients: list[httpx.AsyncClient] = []
    targets: list[TargetPoller] = []
    for target in config.targets:
        items = items_of(target, shard)
        discovery = discovery_of(target, config, shard)
        if not items and discovery is None:
            continue
        auth: httpx.Auth
        creds = target.credentials
        if isinstance(creds, AkSkCredentials):
            auth = AkSkAuth(creds, clock.wall)
        else:
            iam_http = _http_client(target, config, None, transport)
            clients.append(iam_http)
            source = IamTokenSource(
                iam_http,
                target.iam_endpoint,
                target.project_id,
                creds,
                clock.wall,
                observe=partial(ledger.request, target.project_id, IAM_TOKENS),
            )
            ledger.expect_refusals(target.project_id, IAM_TOKENS)
            auth = IamTokenAuth(source)
        http = _http_client(target, config, auth, transport)
        clients.append(http)
        budget = RequestBudget(
            target.requests_per_second,
            target.burst,
            clock=clock.monotonic,
            max_pause=config.retry.max_backoff,
            log=log.bind(project_id=target.project_id),
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
        targets.append(
            TargetPoller(
                target.project_id,
                items,
                client,
                target.max_concurrency,
                clock,
                ledger,
                log,
                request_rate=partial(_rate_of, budget),
                refusal_backoff=config.poll_interval,
                discovery=discovery,
            )
        )
    identity = (shard.index, shard.total)
    initial = Snapshot(config.poll_interval, config.stale_after, shard=identity)
    cache = ExpositionCache(initial, clock.wall, process_metrics())

    async def publish(snapshot: Snapshot) -> None:
        await asyncio.to_thread(cache.publish, snapshot)

    poller = Poller(
        targets,
        interval=config.poll_interval,
        stale_after=config.stale_after,
        jitter=config.jitter,
        publish=publish,
        clock=clock,
        ledger=ledger,
        log=log,
        shard=identity,
    )
    return Exporter(poller=poller, cache=cache, clients=clients)


async def run(
    config: Config,
    listen_address: str,
    log: FilteringBoundLogger,
    *,
    shard: Shard = UNSHARDED,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[int], None] | None = None,
    web: WebConfigFile | None = None,
) -> int:
    """Serve /metrics and poll until SIGTERM/SIGINT (or ``stop``); return the exit code."""
    stop = stop or asyncio.Event()
    exporter = build(config, log, shard=shard)
    try:
        server = MetricsServer(listen_address, exporter.cache.payload, exporter.ready, web)
    except OSError as exc:
        log.error("listen_failed", listen_address=listen_address, error=str(exc))
        await exporter.close()
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
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

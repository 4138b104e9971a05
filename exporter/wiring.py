"""One target of the config, wired: its ModelArts client (``connect``: credentials,
authentication, HTTP clients, request budget, retries), the items it polls (``items_of``)
and its ``TargetPoller`` (``Wiring.target``).

``connect`` is shared by the exporter and ``modelarts-exporter probe``, so that both sign,
budget and count requests the same way.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import httpx
from structlog.typing import FilteringBoundLogger

from exporter import __version__
from exporter.auth import AkSkAuth, IamTokenAuth, IamTokenSource
from exporter.budget import RequestBudget
from exporter.client import ModelArtsClient
from exporter.clock import Clock
from exporter.config import AkSkCredentials, Config, PasswordCredentials, Target
from exporter.credentials import RotatingCredentials
from exporter.cycle import TargetPoller
from exporter.discovery import discovery_of
from exporter.metadata import MetadataAuth, MetadataCredentialSource
from exporter.models import Api, ItemKey
from exporter.selfmetrics import RequestLedger
from exporter.sharding import UNSHARDED, Shard

__all__ = ["Connection", "ResponseHook", "Wired", "Wiring", "connect", "items_of"]

USER_AGENT = f"modelarts-exporter/{__version__}"
#: The ``api`` label of IAM token requests in ``modelarts_api_requests_total``.
IAM_TOKENS = "iam_tokens"


def items_of(target: Target, shard: Shard = UNSHARDED) -> list[ItemKey]:
    """The items of a target that ``shard`` polls: its pools, then its job types."""
    items = [ItemKey(target.project_id, Api.WORKLOAD_STATISTICS, p) for p in target.pools] + [
        ItemKey(target.project_id, Api.RESOURCE_SPECS, j) for j in target.job_types
    ]
    return [item for item in items if shard.owns(item)]


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


@dataclass(frozen=True)
class Wired:
    """One target's poller and the HTTP clients that it alone uses."""

    target: Target
    poller: TargetPoller
    clients: tuple[httpx.AsyncClient, ...]


@dataclass
class Wiring:
    """What every target is wired with; kept to wire the targets of a reloaded config."""

    clock: Clock
    ledger: RequestLedger
    shard: Shard
    transport: httpx.AsyncBaseTransport | None
    log: FilteringBoundLogger

    def target(self, target: Target, config: Config) -> Wired | None:
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
        return Wired(target, poller, wired.http_clients)

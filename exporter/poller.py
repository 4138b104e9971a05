"""The poll loops: every interval, each target polls its items, then a new ``Snapshot``
is published.

- **Items.** An item is one (project, api, target): a pool's workload statistics, a job
  type's resource specs, or the target's pool discovery (ListPools). Discovered pools join
  and leave the target's items when ListPools is refreshed; an item that leaves also leaves
  the snapshot.
- **Targets are independent.** Each target (project) has its own ``TargetPoller`` with its
  own client, credentials, concurrency bound, request budget and refusal backoff, and its
  own loop on its own ticks. A slow, failing or locked-out target never delays or blanks
  another: each target's cycle publishes a snapshot with its own fresh data.
- **Credential safety.** In each cycle a target sends one request first; only if it was not
  refused (401/403) do the rest follow. After any 401/403 the target's remaining items are
  skipped until the next interval, so a bad key costs one failed request per interval,
  never a burst that trips the five-failures lockout.
- **Isolation.** A failure marks that one item failed and keeps its last good data; the data
  leaves /metrics once older than ``stale_after``, or at once when ModelArts says the pool
  does not exist (404 ``ModelArts.50015001``).
- **A deadline per cycle.** No request of a cycle starts, and none is waited for, after
  ``CYCLE_SHARE`` of the interval: an item out of time fails for this cycle and is polled
  again next cycle. Probes are sent once while another item could probe instead, and items
  that failed on their own last cycle are probed last, so one throttled or slow item never
  delays the others' polls past their interval.
- **No overlap.** A target's cycles run one after another on a fixed grid of ticks. A cycle
  that runs past one or more ticks skips them; each skipped tick is logged and counted.
- **Reload.** ``Poller.replace_targets`` swaps the targets while the loops run: a target
  given again (the same ``TargetPoller``) keeps its loop, a new one starts its own, and the
  loops of the others are cancelled. States are kept by ``ItemKey``, so the data of items
  that still exist never leaves /metrics; those of projects that left go at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from exporter.discovery import PoolDiscovery
from exporter.errors import (
    DEADLINE_EXCEEDED,
    ApiError,
    AuthError,
    ErrorDetail,
    NotFoundError,
    PollError,
    ThrottledError,
)
from exporter.models import (
    Api,
    CallLimits,
    ConfigStatus,
    CycleStats,
    ItemKey,
    ItemState,
    PoolList,
    Result,
    Snapshot,
)

__all__ = ["Clock", "Poller", "RequestLedger", "SystemClock", "TargetPoller"]

#: Distinct error codes kept per (project, api) before new ones are counted as "other".
MAX_ERROR_CODES = 32
#: How many fields or items one log line names (it says how many in all).
MAX_NAMED = 5
#: Items tried one at a time per cycle until one proves the credentials are accepted.
PROBES = 3
#: The longest a refused target waits before it is asked again (seconds).
MAX_REFUSAL_BACKOFF = 900.0
#: A cycle's deadline, as a share of the interval from its start: no request of the cycle
#: starts, and none is waited for, after it, so that the next cycle starts on time.
CYCLE_SHARE = 0.9
#: A cycle also has at least the attempt timeout and this, so that its first request (sent
#: just after the start) is always waited for as long as the configured ``timeout`` says.
TIMEOUT_GRACE = 0.25


class Clock(Protocol):
    def wall(self) -> float: ...
    def monotonic(self) -> float: ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class Source(Protocol):
    """What a target poller needs from a client (``ModelArtsClient`` is one)."""

    async def workload_statistics(self, pool: str, limits: CallLimits = ...) -> Result: ...
    async def resource_specs(self, job_type: str, limits: CallLimits = ...) -> Result: ...
    async def list_pools(
        self,
        *,
        workspace_id: str | None = None,
        status: str | None = None,
        label_selector: str | None = None,
        limits: CallLimits = ...,
    ) -> PoolList: ...


class RequestLedger:
    """Counts API requests by status and failed polls by error code (bounded)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.errors: Counter[tuple[str, str, str]] = Counter()

    def request(self, project_id: str, api: str, status: str) -> None:
        self.requests[(project_id, str(api), status)] += 1

    def expect_refusals(self, project_id: str, api: str) -> None:
        """Start the 401, 403 and 429 counts at 0, so that a first refusal or throttling is
        an increase that ``increase()`` sees, not the birth of a series at 1."""
        for status in ("401", "403", "429"):
            self.requests.setdefault((project_id, str(api), status), 0)

    def error(self, project_id: str, api: Api, code: str) -> None:
        known = {c for (p, a, c) in self.errors if p == project_id and a == api.value}
        if code not in known and len(known) >= MAX_ERROR_CODES:
            code = "other"
        self.errors[(project_id, api.value, code)] += 1

    def forget(self, project_id: str) -> None:
        """Drop a project's counts: it is no longer polled, its series leave /metrics."""
        for counts in (self.requests, self.errors):
            for key in [k for k in counts if k[0] == project_id]:
                del counts[key]


@dataclass(frozen=True)
class _Outcome:
    state: ItemState
    reached: bool
    #: Whether the item's own request failed in a way worth retrying (throttled, timed out,
    #: 5xx): it goes last next cycle (``_place``).
    retryable: bool = False
    #: Whether the cycle's deadline came first: it goes first next cycle.
    out_of_time: bool = False


class TargetPoller:
    """Polls the items of one target once per call to ``poll``."""

    def __init__(
        self,
        project_id: str,
        items: Sequence[ItemKey],
        source: Source,
        max_concurrency: int,
        clock: Clock,
        ledger: RequestLedger,
        log: structlog.typing.FilteringBoundLogger,
        request_rate: Callable[[], float] | None = None,
        refusal_backoff: float = 60.0,
        discovery: PoolDiscovery | None = None,
        region: str = "",
        credentials_read: Callable[[], bool] = lambda: True,
        credentials_expiry: Callable[[], float | None] = lambda: None,
        attempt_timeout: float = 0.0,
    ) -> None:
        self.project_id = project_id
        self._attempt_timeout = attempt_timeout
        #: The project's region: a label of its series, nothing else.
        self.region = region
        #: Whether the last read of the target's credential files worked (True without).
        self.credentials_read = credentials_read
        #: When the credentials in use expire, where that is known (IAM token, metadata).
        self.credentials_expiry = credentials_expiry
        self._static = tuple(items)
        self._static_keys = frozenset(self._static)
        #: The request budget's current rate, when the target has a budget.
        self.request_rate = request_rate
        self._discovery = discovery
        self._refusal_backoff = refusal_backoff
        self._refusals = 0
        self._resume_at = 0.0
        #: Where each item goes in the next cycle's order (``_place``): first if it ran out
        #: of time last cycle, last if its own request failed without proving anything.
        self._places: dict[ItemKey, tuple[int, float]] = {}
        self._source = source
        self._limit = asyncio.Semaphore(max_concurrency)
        self._clock = clock
        self._ledger = ledger
        self._log = log.bind(project_id=project_id)
        apis = {key.api for key in self._static}
        if discovery is not None:
            apis |= {Api.POOLS, Api.WORKLOAD_STATISTICS}
        for api in sorted(apis):
            ledger.expect_refusals(project_id, api)

    @property
    def items(self) -> tuple[ItemKey, ...]:
        """The items polled every cycle: the configured ones, then the discovered pools."""
        if self._discovery is None:
            return self._static
        known = set(self._static)
        return self._static + tuple(k for k in self._discovery.pool_items if k not in known)

    def keys(self) -> set[ItemKey]:
        """Every item of this target whose state is kept: ``items`` and discovery."""
        keys = set(self.items)
        if self._discovery is not None:
            keys.add(self._discovery.key)
        return keys

    def claims(self, key: ItemKey) -> bool:
        """Whether ``key`` is, or may turn out to be, one of this target's items: with
        discovery any pool of the project may be, until ListPools says otherwise."""
        if key.project_id != self.project_id:
            return False
        if self._discovery is None:
            return key in self._static_keys
        return (
            key.api is Api.WORKLOAD_STATISTICS
            or key in self._static_keys
            or key == self._discovery.key
        )

    def dropped(self, keys: Iterable[ItemKey]) -> list[ItemKey]:
        """Those of this project's ``keys`` whose states go after a cycle: not ``keys()``,
        nor, until discovery has listed the pools once, a pool it may list (a target that a
        reload rebuilt keeps its discovered pools' data until its ListPools answers)."""
        keep = self.keys()
        unlisted = self._discovery is not None and not self._discovery.listed
        return [k for k in keys if k not in keep and not (unlisted and self.claims(k))]

    @property
    def refused(self) -> bool:
        """Whether ModelArts refused the credentials (401/403) and has accepted no request
        since: from a refused cycle until a cycle gets through without a refusal."""
        return self._refusals > 0

    def inherit_backoff(self, previous: TargetPoller) -> None:
        """Wait out ``previous``'s refusal backoff (same credentials, rebuilt on reload), so
        that a reload never sends a refused key again sooner than the backoff allows."""
        self._refusals = previous._refusals
        self._resume_at = previous._resume_at

    async def poll(
        self,
        previous: dict[ItemKey, ItemState],
        tick: float | None = None,
        deadline: float | None = None,
    ) -> list[_Outcome]:
        """Poll every item: probes first, one at a time, then the rest concurrently.

        Until discovery has listed the pools once, it is the first probe. Probing goes on
        (at most ``PROBES`` items) until an answer proves the credentials were accepted. A
        probe is sent once, not retried, while other items could probe instead, and items
        that failed last cycle on their own (throttled, timed out, 5xx) are probed last:
        one item's retries never hold up the others. A refusal, or no proving answer,
        stops the target for this cycle; after refused cycles in a row the target also
        waits out a growing backoff, counted in ticks: ``tick`` is the cycle's place on the
        grid (default: now), before any jitter delayed its start. Only a cycle in which a
        request was accepted and none refused ends the backoff and ``refused``: one without
        any answer proves nothing about the credentials.

        ``deadline`` (monotonic) bounds the cycle: no request starts, and none is waited
        for, after it (``CallLimits``); an item out of time fails for this cycle and goes
        first in the next, so that a cycle short of time never starves the same items. It
        is never sooner than ``attempt_timeout`` (and a grace) from now: an answer within
        the configured timeout is always waited for once, even if the interval is shorter
        (the cycle then overruns, and skips ticks, as it must).
        """
        if deadline is not None:
            least = self._clock.monotonic() + self._attempt_timeout + TIMEOUT_GRACE
            deadline = max(deadline, least)
        outcomes = await self._cycle(previous, tick, deadline)
        self._places = {o.state.key: _place(o) for o in outcomes}
        if cut := [o.state.key.target for o in outcomes if o.out_of_time]:
            self._log.warning(
                "poll_cycle_deadline", cut=len(cut), items=len(outcomes), targets=cut[:MAX_NAMED]
            )
        return outcomes

    async def _cycle(
        self, previous: dict[ItemKey, ItemState], tick: float | None, deadline: float | None
    ) -> list[_Outcome]:
        now = self._clock.monotonic()
        tick = now if tick is None else tick
        due = self._discovery is not None and self._discovery.due(now)
        done: set[ItemKey] = set()
        if tick < self._resume_at:
            code = "skipped_auth_backoff"
            return [self._skipped(k, previous.get(k), code) for k in self._pending(done, due)]
        outcomes: list[_Outcome] = []
        while pending := self._pending(done, due):
            if len(outcomes) >= PROBES:
                # No probe got an answer with accepted credentials: don't fan out blind.
                code = "skipped_unreachable"
                return [*outcomes, *(self._skipped(k, previous.get(k), code) for k in pending)]
            key = pending[0]
            done.add(key)
            # Sent once while another item could probe after it.
            once = 1 if len(pending) > 1 and len(outcomes) < PROBES - 1 else None
            result = await self._poll_one(key, previous.get(key), now, deadline, once)
            if isinstance(result, _Refused):
                self._back_off_after_refusal(tick)
                skipped = [self._skipped(k, previous.get(k)) for k in self._pending(done, due)]
                return [*outcomes, result.outcome, *skipped]
            outcomes.append(result)
            if result.reached:
                break
        refused = asyncio.Event()
        rest = self._pending(done, due)
        results = await asyncio.gather(
            *(self._limited(k, previous.get(k), now, refused, deadline) for k in rest)
        )
        if refused.is_set():
            self._back_off_after_refusal(tick)
        elif any(o.reached for o in (*outcomes, *results)):
            self._refusals = 0
        return [*outcomes, *results]

    def _pending(self, done: set[ItemKey], discover: bool) -> list[ItemKey]:
        """Items not yet polled this cycle: ``items``, and discovery when due.

        The first ListPools goes first, so that the pools it finds are polled in the same
        cycle; later refreshes go last, with the rest, so that a slow or failing ListPools
        never holds up the pools already known (new ones are polled from the next cycle).
        """
        keys = sorted(self.items, key=lambda k: self._places.get(k, (NEUTRAL, 0.0)))  # stable
        if discover and self._discovery is not None:
            key = self._discovery.key
            keys = [*keys, key] if self._discovery.listed else [key, *keys]
        return [k for k in keys if k not in done]

    def _back_off_after_refusal(self, tick: float) -> None:
        """After the 2nd refused cycle in a row wait 2, then 4, 8 ... x the base (capped)
        before asking again: a key that keeps being refused must not be tried every
        interval until ModelArts locks it for every tool that uses it.

        The wait counts from the refused cycle's tick, less half a base, so that the cycle
        on the tick where it ends runs whatever rounding the grid of ticks accumulated."""
        self._refusals += 1
        delay = min(MAX_REFUSAL_BACKOFF, self._refusal_backoff * 2.0 ** (self._refusals - 1))
        if self._refusals >= 2:
            self._resume_at = tick + delay - self._refusal_backoff / 2
            self._log.warning(
                "target_backoff_after_refusal", refused_cycles=self._refusals, seconds=delay
            )

    async def _limited(
        self,
        key: ItemKey,
        before: ItemState | None,
        started: float,
        refused: asyncio.Event,
        deadline: float | None,
    ) -> _Outcome:
        async with self._limit:
            if refused.is_set():
                return self._skipped(key, before)
            result = await self._poll_one(key, before, started, deadline)
        if isinstance(result, _Refused):
            refused.set()
            return result.outcome
        return result

    def _skipped(
        self, key: ItemKey, before: ItemState | None, code: str = "skipped_auth_failure"
    ) -> _Outcome:
        self._ledger.error(self.project_id, key.api, code)
        state = _failed(key, before, self._clock.wall(), 0.0, code, keep=True)
        return _Outcome(self._aged(state), reached=False)

    def _aged(self, state: ItemState) -> ItemState:
        """``state`` with discovery's own staleness limit, if it is the discovery item."""
        if self._discovery is None or state.key != self._discovery.key:
            return state
        return replace(state, stale_after=self._discovery.stale_after)

    async def _poll_one(
        self,
        key: ItemKey,
        before: ItemState | None,
        cycle_started: float,
        deadline: float | None,
        attempts: int | None = None,
    ) -> _Outcome | _Refused:
        left = None if deadline is None else deadline - self._clock.monotonic()
        limits = CallLimits(attempts=attempts, time_left=left)
        result = await self._attempt(key, before, cycle_started, limits)
        if isinstance(result, _Refused):
            return _Refused(replace(result.outcome, state=self._aged(result.outcome.state)))
        return replace(result, state=self._aged(result.state))

    async def _attempt(
        self, key: ItemKey, before: ItemState | None, cycle_started: float, limits: CallLimits
    ) -> _Outcome | _Refused:
        started, wall = self._clock.monotonic(), self._clock.wall()
        try:
            data = await self._fetch(key, cycle_started, limits)
        except PollError as error:
            duration = self._clock.monotonic() - started
            if error.code != DEADLINE_EXCEEDED:  # one line per cycle says those (poll())
                self._log_failure(key, error)
            self._ledger.error(self.project_id, key.api, error.code)
            gone = isinstance(error, NotFoundError) and error.pool_gone
            self._tell_discovery(key, cycle_started, gone=gone)
            if error.code == DEADLINE_EXCEEDED and before is not None:
                # Not polled to the end this cycle, which says nothing of the item: its state
                # stays (its data ages, as when a cycle overran and skipped it).
                return _Outcome(before, reached=False, out_of_time=True)
            state = _failed(key, before, wall, duration, error.code, keep=not gone)
            outcome = _Outcome(
                state,
                reached=_reached(error),
                retryable=error.retryable,
                out_of_time=error.code == DEADLINE_EXCEEDED,
            )
            return _Refused(outcome) if isinstance(error, AuthError) else outcome
        except Exception:  # noqa: BLE001 - a bug must cost one item, never the loop
            self._log.exception("poll_crashed", api=key.api.value, target=key.target)
            self._ledger.error(self.project_id, key.api, "internal_error")
            self._tell_discovery(key, cycle_started, gone=False)
            duration = self._clock.monotonic() - started
            state = _failed(key, before, wall, duration, "internal_error", keep=True)
            return _Outcome(state, reached=False)
        duration = self._clock.monotonic() - started
        self._count_problems(key, getattr(data, "problems", ()))
        state = ItemState(key, True, duration, wall, self._clock.wall(), data)
        return _Outcome(state, reached=True)

    def _count_problems(self, key: ItemKey, problems: Sequence[str]) -> None:
        """Fields of a served answer that could not be read: counted and logged, while what
        could be read is the item's data."""
        if not problems:
            return
        self._ledger.error(self.project_id, key.api, "invalid_field")
        self._log.warning(
            "response_partly_unreadable",
            api=key.api.value,
            target=key.target,
            error_code="invalid_field",
            problems=list(problems[:MAX_NAMED]),
            unreadable=len(problems),
        )

    def _tell_discovery(self, key: ItemKey, cycle_started: float, *, gone: bool) -> None:
        """A failed ListPools backs off; a listed pool that does not exist makes the next
        cycle refresh the list."""
        if self._discovery is None:
            return
        if key == self._discovery.key:
            self._discovery.failed(cycle_started)
        elif gone and key in self._discovery.pool_items:
            self._discovery.expire()

    async def _fetch(self, key: ItemKey, cycle_started: float, limits: CallLimits) -> Result:
        if key.api is Api.WORKLOAD_STATISTICS:
            return await self._source.workload_statistics(key.target, limits)
        if key.api is Api.RESOURCE_SPECS:
            return await self._source.resource_specs(key.target, limits)
        if self._discovery is None:
            raise ValueError(f"no discovery configured for {key}")
        rules = self._discovery.rules
        found = await self._source.list_pools(
            workspace_id=rules.workspace_id,
            status=rules.status,
            label_selector=rules.label_selector,
            limits=limits,
        )
        return self._discovery.accept(found, cycle_started)

    def _log_failure(self, key: ItemKey, error: PollError) -> None:
        d: ErrorDetail = error.detail
        self._log.warning(
            "poll_failed",
            api=key.api.value,
            target=key.target,
            http_status=d.http_status,
            error_code=error.code,
            request_id=d.request_id,
            error=" ".join([d.message, *getattr(error, "__notes__", ())]),
            retryable=error.retryable,
        )


@dataclass(frozen=True)
class _Refused:
    """The credentials were refused: the target stops for this cycle."""

    outcome: _Outcome


def _failed(
    key: ItemKey,
    before: ItemState | None,
    attempted: float,
    duration: float,
    code: str,
    *,
    keep: bool,
) -> ItemState:
    return ItemState(
        key=key,
        success=False,
        duration_seconds=duration,
        last_attempt=attempted,
        last_success=before.last_success if before else None,
        data=before.data if (before and keep) else None,
        error_code=code,
    )


#: Places in a cycle's order (``_place``); equal ones keep the configured order.
OUT_OF_TIME, NEUTRAL, TROUBLED = 0, 1, 2


def _place(outcome: _Outcome) -> tuple[int, float]:
    """Where the item goes next cycle: first if it ran out of time, the oldest data first
    (so a cycle short of time takes turns rather than starving the same items); last if its
    own request failed without proving anything (throttled, timed out, 5xx: its retries
    must not hold up the others); else in its configured place."""
    if outcome.out_of_time:
        return (OUT_OF_TIME, outcome.state.last_success or 0.0)
    return (TROUBLED if outcome.retryable and not outcome.reached else NEUTRAL, 0.0)


def _reached(error: PollError) -> bool:
    """Whether ModelArts itself answered, which proves the credentials were accepted (for
    probing and ``modelarts_up``): a 4xx with a ``ModelArts.*`` error code. The API gateway
    answers some errors (``APIGW.0101``: no such API) before it checks the signature, so
    they prove nothing; nor do 5xx, 429 or answers without a code."""
    if isinstance(error, AuthError | ThrottledError) or not isinstance(error, ApiError):
        return False
    status = error.detail.http_status or 0
    code = (error.detail.error_code or "").lower()
    return 200 <= status < 500 and code.startswith("modelarts.")


Publish = Callable[[Snapshot], Awaitable[None]]


class Poller:
    """Runs each target's poll loop and publishes a new snapshot after every target cycle."""

    def __init__(
        self,
        targets: Iterable[TargetPoller],
        *,
        interval: float,
        stale_after: float,
        jitter: float,
        publish: Publish,
        clock: Clock,
        ledger: RequestLedger,
        log: structlog.typing.FilteringBoundLogger,
        rng: random.Random | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self._targets = {t.project_id: t for t in targets}
        self._shard = shard
        self._interval = interval
        self._stale_after = stale_after
        self._jitter = jitter
        self._publish = publish
        self._clock = clock
        self._ledger = ledger
        self._log = log
        self._rng = rng or random.Random()
        self._states: dict[ItemKey, ItemState] = {}
        self._cycles = {project: CycleStats() for project in self._targets}
        self._up: dict[str, bool] = {}
        self._config = ConfigStatus(last_success=clock.wall())
        self._publishing = asyncio.Lock()
        #: Set by a target's loop after its cycle; the publisher then renders once.
        self._changed = asyncio.Event()
        #: Targets whose completed cycles are in a published snapshot.
        self._published: set[str] = set()
        self._ready = False
        #: While ``run`` runs: its task group, its stop event, and each target's loop.
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()
        self.snapshot = self._build()

    def ready(self) -> bool:
        """Whether every target's first cycle is in a published snapshot. Once ready,
        always: targets that a reload adds do not make a serving exporter unready."""
        return self._ready

    def _build(self) -> Snapshot:
        return Snapshot(
            poll_interval_seconds=self._interval,
            stale_after_seconds=self._stale_after,
            items=tuple(self._states[k] for k in sorted(self._states)),
            up=tuple(sorted(self._up.items())),
            regions=tuple(sorted((p, t.region) for p, t in self._targets.items())),
            credentials_refused=tuple(sorted((p, t.refused) for p, t in self._targets.items())),
            credentials_read=tuple(
                sorted((p, t.credentials_read()) for p, t in self._targets.items())
            ),
            credentials_expiry=tuple(
                sorted(
                    (p, expiry)
                    for p, t in self._targets.items()
                    if (expiry := t.credentials_expiry()) is not None
                )
            ),
            requests=tuple(sorted(self._ledger.requests.items())),
            errors=tuple(sorted(self._ledger.errors.items())),
            cycles=tuple(sorted(self._cycles.items())),
            shard=self._shard,
            request_rates=tuple(
                sorted(
                    (t.project_id, t.request_rate())
                    for t in self._targets.values()
                    if t.request_rate
                )
            ),
            config=self._config,
        )

    def config_reloaded(self, *, successful: bool) -> None:
        """Record a configuration reload, or a failed one (the old config stays), and
        publish it."""
        last = self._clock.wall() if successful else self._config.last_success
        self._config = ConfigStatus(successful, last)
        self._changed.set()

    async def replace_targets(
        self,
        targets: Iterable[TargetPoller],
        *,
        interval: float | None = None,
        stale_after: float | None = None,
        jitter: float | None = None,
    ) -> None:
        """Poll ``targets`` from now on, with these settings when given (a reload).

        A target given again (the same object) keeps its loop and ticks. The loops of the
        others are cancelled, in-flight requests included, and a new target starts its own
        at once. Item states stay where their project's new target may still poll them, so
        its series do not blink; a project that left takes its series and counts along.
        """
        new = {t.project_id: t for t in targets}
        old = self._targets
        retired = [p for p, t in old.items() if new.get(p) is not t]
        stopping = [self._loops.pop(p) for p in retired if p in self._loops]
        for task in stopping:
            task.cancel()
        if stopping:
            await asyncio.wait(stopping)
        self._targets = new
        self._interval = self._interval if interval is None else interval
        self._stale_after = self._stale_after if stale_after is None else stale_after
        self._jitter = self._jitter if jitter is None else jitter
        for key in list(self._states):
            target = new.get(key.project_id)
            if target is None or (target is not old.get(key.project_id) and not target.claims(key)):
                del self._states[key]
        for project in old.keys() - new.keys():
            del self._cycles[project]
            self._up.pop(project, None)
            self._published.discard(project)
            self._ledger.forget(project)
        for project, target in new.items():
            self._cycles.setdefault(project, CycleStats())
            if old.get(project) is not target:
                self._start(target)
        self._changed.set()

    def _start(self, target: TargetPoller) -> None:
        """Start ``target``'s loop, if the poller runs and is not stopping."""
        if self._group is not None and not self._stop.is_set():
            loop = self._group.create_task(self._loop(target, self._stop))
            self._loops[target.project_id] = loop

    async def run_cycle(self, tick: float | None = None) -> Snapshot:
        """Poll every target once (concurrently), publish and return the new snapshot;
        ``tick`` is the cycle's scheduled time (default: now)."""
        await asyncio.gather(*(self._poll_target(t, tick) for t in self._targets.values()))
        return await self._publish_latest()

    async def _poll_target(self, target: TargetPoller, tick: float | None = None) -> None:
        """One cycle of one target; its outcomes replace its items' states."""
        started = self._clock.monotonic()
        deadline = started + self._interval * CYCLE_SHARE
        outcomes = await target.poll(self._states, tick, deadline)
        for outcome in outcomes:
            self._states[outcome.state.key] = outcome.state
        for key in target.dropped(k for k in self._states if k.project_id == target.project_id):
            del self._states[key]
        self._up[target.project_id] = any(o.reached for o in outcomes) or (
            not outcomes and self._up.get(target.project_id, False)
        )
        duration = self._clock.monotonic() - started
        stats = self._cycles[target.project_id]
        self._cycles[target.project_id] = replace(
            stats,
            cycles=stats.cycles + 1,
            last_duration_seconds=duration,
            last_finished=self._clock.wall(),
        )
        self._log.info(
            "poll_cycle_finished",
            project_id=target.project_id,
            duration_seconds=round(duration, 3),
            items=len(outcomes),
            failed=sum(1 for o in outcomes if not o.state.success),
        )

    async def _publish_latest(self) -> Snapshot:
        """Build a snapshot of everything known now and publish it. One publish at a time,
        each built under the lock, so a later snapshot never lands before an earlier one."""
        async with self._publishing:
            self.snapshot = snapshot = self._build()
            try:
                await self._publish(snapshot)
            except Exception:  # noqa: BLE001 - a render failure costs this cycle, not the process
                self._log.exception("publish_failed", items=len(snapshot.items))
            else:
                self._published |= {p for p, stats in snapshot.cycles if stats.cycles > 0}
                self._ready = self._ready or self._published >= set(self._cycles)
        return snapshot

    async def run(self, stop: asyncio.Event) -> None:
        """Run every target's loop until ``stop`` is set. First cycles start at once.

        Loops do not render: after a cycle a loop flags the change, and one publisher
        renders the latest state. Cycles that end while a render runs share the next one,
        so many targets cost at most one render at a time, and no loop waits for one.
        """
        publisher = asyncio.create_task(self._publisher())
        try:
            if not self._targets:
                self._changed.set()
            async with asyncio.TaskGroup() as loops:
                self._group, self._stop = loops, stop
                for target in self._targets.values():
                    self._start(target)
                await stop.wait()
        finally:
            self._group = None
            self._loops.clear()
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher

    async def _publisher(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._publish_latest()

    async def _loop(self, target: TargetPoller, stop: asyncio.Event) -> None:
        """One target's cycles on its own fixed grid of ticks."""
        next_tick = self._clock.monotonic()
        delay = 0.0
        while not await _wait(stop, next_tick + delay - self._clock.monotonic()):
            try:
                await self._poll_target(target, next_tick)
            except Exception:  # noqa: BLE001 - a bug costs this target one cycle, not the others
                self._log.exception("poll_cycle_crashed", project_id=target.project_id)
            self._changed.set()
            next_tick += self._interval
            # Late only if the cycle itself outran the interval: this cycle's jitter delay
            # moved its start, not its length.
            late = self._clock.monotonic() - delay - next_tick
            if late > 0:
                missed = math.floor(late / self._interval) + 1
                next_tick += missed * self._interval
                stats = self._cycles[target.project_id]
                self._cycles[target.project_id] = replace(stats, skipped=stats.skipped + missed)
                self._log.warning(
                    "poll_cycle_overrun",
                    project_id=target.project_id,
                    skipped_cycles=missed,
                    duration_seconds=round(stats.last_duration_seconds, 3),
                    interval_seconds=self._interval,
                )
            delay = self._rng.uniform(0, self._jitter)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``stop``; True if stopped."""
    if stop.is_set():
        return True
    if seconds <= 0:
        return False
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True

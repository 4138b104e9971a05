"""One target's poll cycle: ``TargetPoller.poll`` polls the target's items once.

A target is one entry of the config's ``targets:`` (a project in a region); an item is one
thing it polls: a pool's workload statistics, a job type's resource specs, or the target's
pool discovery (ListPools) (``ItemKey``). ``exporter.poller`` runs each target's cycles on
their own loop and publishes what they return.

- **Credential safety.** In each cycle a target sends one request first; only if it was not
  refused (401/403) do the rest follow. After any 401/403 the target's remaining items are
  skipped until the next interval, so a bad key costs one failed request per interval,
  never a burst that trips the five-failures lockout. After refused cycles in a row the
  target waits out a growing backoff.
- **Isolation.** A failure marks that one item failed and keeps its last good data; the data
  leaves /metrics once older than ``stale_after``, or at once when ModelArts says the pool
  does not exist (404 ``ModelArts.50015001``).
- **A deadline per cycle.** No request of a cycle starts, and none is waited for, after
  the deadline the scheduler gives: an item out of time fails for this cycle and is polled
  again first next cycle. Probes are sent once while another item could probe instead, and
  items that failed on their own last cycle are probed last, so one throttled or slow item
  never delays the others' polls past their interval.
- **Discovery.** Discovered pools join and leave the target's items when ListPools is
  refreshed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from exporter.clock import Clock
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
from exporter.models import Api, CallLimits, ItemKey, ItemState, PoolList, Result
from exporter.selfmetrics import RequestLedger

__all__ = ["PROBES", "Outcome", "Source", "TargetPoller"]

#: How many fields or items one log line names (it says how many in all).
MAX_NAMED = 5
#: Items tried one at a time per cycle until one proves the credentials are accepted.
PROBES = 3
#: The longest a refused target waits before it is asked again (seconds).
MAX_REFUSAL_BACKOFF = 900.0
#: A cycle also has at least the attempt timeout and this, so that its first request (sent
#: just after the start) is always waited for as long as the configured ``timeout`` says.
TIMEOUT_GRACE = 0.25


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


@dataclass(frozen=True)
class Outcome:
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
    ) -> list[Outcome]:
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
        if cut := [o.state.key.name for o in outcomes if o.out_of_time]:
            self._log.warning(
                "poll_cycle_deadline", cut=len(cut), items=len(outcomes), targets=cut[:MAX_NAMED]
            )
        return outcomes

    async def _cycle(
        self, previous: dict[ItemKey, ItemState], tick: float | None, deadline: float | None
    ) -> list[Outcome]:
        now = self._clock.monotonic()
        tick = now if tick is None else tick
        due = self._discovery is not None and self._discovery.due(now)
        done: set[ItemKey] = set()
        if tick < self._resume_at:
            code = "skipped_auth_backoff"
            return [self._skipped(k, previous.get(k), code) for k in self._pending(done, due)]
        outcomes: list[Outcome] = []
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
    ) -> Outcome:
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
    ) -> Outcome:
        self._ledger.error(self.project_id, key.api, code)
        state = _failed(key, before, 0.0, code, keep=True)
        return Outcome(self._aged(state), reached=False)

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
    ) -> Outcome | _Refused:
        left = None if deadline is None else deadline - self._clock.monotonic()
        limits = CallLimits(attempts=attempts, time_left=left)
        result = await self._attempt(key, before, cycle_started, limits)
        if isinstance(result, _Refused):
            return _Refused(replace(result.outcome, state=self._aged(result.outcome.state)))
        return replace(result, state=self._aged(result.state))

    async def _attempt(
        self, key: ItemKey, before: ItemState | None, cycle_started: float, limits: CallLimits
    ) -> Outcome | _Refused:
        started = self._clock.monotonic()
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
                return Outcome(before, reached=False, out_of_time=True)
            state = _failed(key, before, duration, error.code, keep=not gone)
            outcome = Outcome(
                state,
                reached=_reached(error),
                retryable=error.retryable,
                out_of_time=error.code == DEADLINE_EXCEEDED,
            )
            return _Refused(outcome) if isinstance(error, AuthError) else outcome
        except Exception:  # noqa: BLE001 - a bug must cost one item, never the loop
            self._log.exception("poll_crashed", api=key.api.value, target=key.name)
            self._ledger.error(self.project_id, key.api, "internal_error")
            self._tell_discovery(key, cycle_started, gone=False)
            duration = self._clock.monotonic() - started
            state = _failed(key, before, duration, "internal_error", keep=True)
            return Outcome(state, reached=False)
        duration = self._clock.monotonic() - started
        self._count_problems(key, getattr(data, "problems", ()))
        state = ItemState(key, True, duration, self._clock.wall(), data)
        return Outcome(state, reached=True)

    def _count_problems(self, key: ItemKey, problems: Sequence[str]) -> None:
        """Fields of a served answer that could not be read: counted and logged, while what
        could be read is the item's data."""
        if not problems:
            return
        self._ledger.error(self.project_id, key.api, "invalid_field")
        self._log.warning(
            "response_partly_unreadable",
            api=key.api.value,
            target=key.name,
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
            return await self._source.workload_statistics(key.name, limits)
        if key.api is Api.RESOURCE_SPECS:
            return await self._source.resource_specs(key.name, limits)
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
            target=key.name,
            http_status=d.http_status,
            error_code=error.code,
            request_id=d.request_id,
            error=" ".join([d.message, *getattr(error, "__notes__", ())]),
            retryable=error.retryable,
        )


@dataclass(frozen=True)
class _Refused:
    """The credentials were refused: the target stops for this cycle."""

    outcome: Outcome


def _failed(
    key: ItemKey,
    before: ItemState | None,
    duration: float,
    code: str,
    *,
    keep: bool,
) -> ItemState:
    return ItemState(
        key=key,
        success=False,
        duration_seconds=duration,
        last_success=before.last_success if before else None,
        data=before.data if (before and keep) else None,
        error_code=code,
    )


#: Places in a cycle's order (``_place``); equal ones keep the configured order.
OUT_OF_TIME, NEUTRAL, TROUBLED = 0, 1, 2


def _place(outcome: Outcome) -> tuple[int, float]:
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

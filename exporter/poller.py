"""The poll loops: every interval, each target's cycle runs (``exporter.cycle``), then a
new ``Snapshot`` is published.

- **Targets are independent.** Each target (project) has its own ``TargetPoller`` with its
  own client, credentials, concurrency bound, request budget and refusal backoff, and its
  own loop on its own ticks. A slow, failing or locked-out target never delays or blanks
  another: each target's cycle publishes a snapshot with its own fresh data.
- **A deadline per cycle.** A cycle gets ``CYCLE_SHARE`` of the interval from its start:
  no request of it starts, and none is waited for, after that, so that the next cycle
  starts on time.
- **No overlap.** A target's cycles run one after another on a fixed grid of ticks. A cycle
  that runs past one or more ticks skips them; each skipped tick is logged and counted.
- **Reload.** ``Poller.replace_targets`` swaps the targets while the loops run: a target
  given again (the same ``TargetPoller``) keeps its loop, a new one starts its own, and the
  loops of the others are cancelled. States are kept by ``ItemKey``, so the data of items
  that still exist never leaves /metrics; those of projects that left go at once.
- **One publisher.** Loops do not render: after a cycle a loop flags the change, and one
  publisher renders the latest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

import structlog

from exporter.clock import Clock
from exporter.cycle import TargetPoller
from exporter.models import ConfigStatus, CycleStats, ItemKey, ItemState, Snapshot
from exporter.selfmetrics import RequestLedger

__all__ = ["CYCLE_SHARE", "Poller", "Publish"]

#: A cycle's deadline, as a share of the interval from its start: no request of the cycle
#: starts, and none is waited for, after it, so that the next cycle starts on time.
CYCLE_SHARE = 0.9


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

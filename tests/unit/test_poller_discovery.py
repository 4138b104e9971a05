"""The poller with pool discovery, and targets that never hold each other up."""

from __future__ import annotations

import asyncio
import re
import time

from exporter.clock import SystemClock
from exporter.config import Discovery
from exporter.cycle import Outcome, TargetPoller
from exporter.discovery import PoolDiscovery
from exporter.errors import ErrorDetail, NotFoundError, TransportError
from exporter.models import NO_LIMITS, Api, CallLimits, ItemKey, ItemState, Pool, PoolList, Snapshot
from exporter.poller import Poller, Publish
from exporter.selfmetrics import RequestLedger
from tests.unit.test_poller import (
    LOG,
    PROJECT,
    FakeClock,
    FakeSource,
    auth_error,
    poller_of,
    raises,
    returns,
    stats,
)

OTHER = "fedcba9876543210fedcba9876543210"
INTERVAL = 60.0
REFRESH = 300.0


def pool(name: str, phase: str = "Running") -> Pool:
    return Pool(name, name.upper(), "Dedicate", "0", phase, (), ())


class DiscoveringSource(FakeSource):
    """A FakeSource that also answers ListPools with ``found`` (or raises ``refusal``)."""

    def __init__(self, found: list[Pool], delay: float = 0.0) -> None:
        super().__init__({p.name: returns(stats(1)) for p in found}, delay)
        self.found = found
        self.failure: Exception | None = None

    async def list_pools(
        self,
        *,
        workspace_id: str | None = None,
        status: str | None = None,
        label_selector: str | None = None,
        limits: CallLimits = NO_LIMITS,
    ) -> PoolList:
        self.calls.append("list_pools")
        if self.failure is not None:
            raise self.failure
        for found in self.found:
            self.behaviours.setdefault(found.name, returns(stats(1)))
        return PoolList(tuple(self.found))


def discovering_poller(
    source: DiscoveringSource,
    clock: FakeClock,
    static: tuple[str, ...] = (),
    rules: Discovery | None = None,
) -> Poller:
    ledger = RequestLedger()
    discovery = PoolDiscovery(
        PROJECT,
        rules or Discovery(refresh_interval=REFRESH),
        owns=lambda key: True,
        slack=INTERVAL / 2,
        stale_after=3 * REFRESH,
    )
    keys = [ItemKey(PROJECT, Api.WORKLOAD_STATISTICS, p) for p in static]
    target = TargetPoller(PROJECT, keys, source, 4, clock, ledger, LOG, discovery=discovery)
    return poller_of([target], clock, ledger, interval=INTERVAL)


def targets(snapshot: Snapshot, api: Api = Api.WORKLOAD_STATISTICS) -> list[str]:
    return [i.key.name for i in snapshot.items if i.key.api is api]


class TestDiscovery:
    def test_discovery_goes_first_and_its_pools_are_polled_in_the_same_cycle(self) -> None:
        """ListPools is the cycle's first request; the pools it lists are polled right after."""
        source = DiscoveringSource([pool("a"), pool("b")])
        snapshot = asyncio.run(discovering_poller(source, FakeClock()).run_cycle())
        assert source.calls[0] == "list_pools"
        assert sorted(source.calls[1:]) == ["a", "b"]
        assert targets(snapshot) == ["a", "b"]
        (found,) = [i for i in snapshot.items if i.key.api is Api.POOLS]
        assert found.key.name == "0"
        assert isinstance(found.data, PoolList)
        assert [p.name for p in found.data.pools] == ["a", "b"]

    def test_static_and_discovered_pools_are_polled_once_each(self) -> None:
        """A pool both configured and discovered is polled once; a static one not listed is
        polled too."""
        source = DiscoveringSource([pool("a"), pool("b")])
        source.behaviours["static"] = returns(stats(2))
        poller = discovering_poller(source, FakeClock(), static=("a", "static"))
        snapshot = asyncio.run(poller.run_cycle())
        assert sorted(source.calls[1:]) == ["a", "b", "static"]
        assert targets(snapshot) == ["a", "b", "static"]

    def test_pools_appear_and_disappear_with_refreshes(self) -> None:
        """A pool no longer listed leaves the snapshot entirely (health series included) at
        the refresh; a new one is polled from the next cycle on, since a refresh runs with
        the known pools, not before them."""
        clock = FakeClock()
        source = DiscoveringSource([pool("a"), pool("b")])
        poller = discovering_poller(source, clock)
        asyncio.run(poller.run_cycle())
        source.found = [pool("b"), pool("c")]
        clock.now += REFRESH
        snapshot = asyncio.run(poller.run_cycle())
        assert targets(snapshot) == ["b"]
        assert source.calls[-1] == "list_pools" or "list_pools" in source.calls[-3:]
        clock.now += INTERVAL
        calls = len(source.calls)
        snapshot = asyncio.run(poller.run_cycle())
        assert sorted(source.calls[calls:]) == ["b", "c"]
        assert targets(snapshot) == ["b", "c"]

    def test_a_refresh_never_holds_up_the_known_pools(self) -> None:
        """Once pools are known, the refresh is not a probe: a known pool goes first, and
        a failing ListPools is retried after 1, 2, 4 intervals, at most every refresh."""
        clock = FakeClock()
        source = DiscoveringSource([pool("a")])
        poller = discovering_poller(source, clock)
        asyncio.run(poller.run_cycle())
        source.failure = TransportError(ErrorDetail(message="x"), "timeout")
        asked = []
        for cycle in range(1, 21):
            clock.now = 1_800_000_000.0 + (REFRESH / INTERVAL + cycle - 1) * INTERVAL
            calls = len(source.calls)
            asyncio.run(poller.run_cycle())
            new = source.calls[calls:]
            assert new[0] == "a"
            if "list_pools" in new:
                asked.append(cycle)
        assert asked == [1, 2, 4, 8, 13, 18]

    def test_a_listed_pool_that_does_not_exist_refreshes_the_list(self) -> None:
        """A discovered pool answering 404 ModelArts.50015001 makes the next cycle ask
        ListPools, so a deleted pool does not linger until the refresh interval."""
        clock = FakeClock()
        source = DiscoveringSource([pool("a"), pool("b")])
        poller = discovering_poller(source, clock)
        asyncio.run(poller.run_cycle())
        gone = NotFoundError(ErrorDetail(404, "ModelArts.50015001", "Pool b not found."))
        source.behaviours["b"] = raises(gone)
        source.found = [pool("a")]
        clock.now += INTERVAL
        asyncio.run(poller.run_cycle())
        clock.now += INTERVAL
        snapshot = asyncio.run(poller.run_cycle())
        assert source.calls.count("list_pools") == 2  # the first, and the one b's 404 asked for
        assert targets(snapshot) == ["a"]

    def test_listpools_is_asked_only_when_the_refresh_is_due(self) -> None:
        """Between refreshes no ListPools request is sent and the known pools are polled;
        a cycle starting within half an interval of the due time refreshes."""
        clock = FakeClock()
        source = DiscoveringSource([pool("a")])
        poller = discovering_poller(source, clock)
        asked = []
        for cycle in range(11):
            clock.now = 1_800_000_000.0 + cycle * INTERVAL + (1 if cycle == 5 else 0)
            before = source.calls.count("list_pools")
            asyncio.run(poller.run_cycle())
            asked.append(source.calls.count("list_pools") - before)
        assert asked == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
        assert source.calls.count("a") == 11

    def test_failed_discovery_keeps_the_last_list_and_retries_next_cycle(self) -> None:
        """When ListPools fails, the pools found before are still polled, its data is kept,
        and ListPools is asked again in the next cycle."""
        clock = FakeClock()
        source = DiscoveringSource([pool("a")])
        poller = discovering_poller(source, clock)
        asyncio.run(poller.run_cycle())
        source.failure = TransportError(ErrorDetail(message="x"), "timeout")
        clock.now += REFRESH
        snapshot = asyncio.run(poller.run_cycle())
        clock.now += INTERVAL
        asyncio.run(poller.run_cycle())
        assert source.calls.count("list_pools") == 3
        assert source.calls.count("a") == 3
        (found,) = [i for i in snapshot.items if i.key.api is Api.POOLS]
        assert source.calls[-2:] == ["a", "list_pools"]
        assert (found.success, found.error_code) == (False, "timeout")
        assert isinstance(found.data, PoolList)
        assert targets(snapshot) == ["a"]

    def test_refused_refresh_backs_off_the_whole_target(self) -> None:
        """A 401 on a later ListPools (sent with the known pools) counts as a refused cycle:
        after two in a row the target waits out the refusal backoff."""
        clock = FakeClock()
        source = DiscoveringSource([pool("a")])
        poller = discovering_poller(source, clock)
        asyncio.run(poller.run_cycle())
        source.failure = auth_error()
        clock.now += REFRESH
        asyncio.run(poller.run_cycle())  # a accepted, ListPools refused
        clock.now += INTERVAL
        asyncio.run(poller.run_cycle())  # ListPools retried after one interval: refused again
        assert source.calls[-2:] == ["a", "list_pools"]
        clock.now += INTERVAL
        calls = len(source.calls)
        snapshot = asyncio.run(poller.run_cycle())
        assert source.calls[calls:] == []
        codes = {i.key.name: i.error_code for i in snapshot.items}
        assert codes == {"0": "APIGW.0301", "a": "skipped_auth_backoff"}

    def test_pools_without_workloads_are_shown_not_polled(self) -> None:
        """Pools in Creating, Deleting or Error are in the discovered data but never polled;
        Running, Abnormal and unknown phases are polled."""
        phases = ["Creating", "Running", "Abnormal", "Deleting", "Error", "Upgrading"]
        source = DiscoveringSource([pool(p.lower(), p) for p in phases])
        snapshot = asyncio.run(discovering_poller(source, FakeClock()).run_cycle())
        assert sorted(source.calls[1:]) == ["abnormal", "running", "upgrading"]
        (found,) = [i for i in snapshot.items if i.key.api is Api.POOLS]
        assert isinstance(found.data, PoolList)
        assert len(found.data.pools) == len(phases)

    def test_excluded_pools_are_neither_shown_nor_polled(self) -> None:
        """Discovery rules drop pools from both the data and the polled items."""
        rules = Discovery(exclude=(re.compile("scratch-.*"),), refresh_interval=REFRESH)
        source = DiscoveringSource([pool("a"), pool("scratch-1")])
        snapshot = asyncio.run(discovering_poller(source, FakeClock(), rules=rules).run_cycle())
        assert "scratch-1" not in source.calls
        (found,) = [i for i in snapshot.items if i.key.api is Api.POOLS]
        assert isinstance(found.data, PoolList)
        assert [p.name for p in found.data.pools] == ["a"]

    def test_discovered_data_goes_stale_after_its_own_limit(self) -> None:
        """Discovery data lives for its own stale_after (3 refreshes here), not the pools'
        3 intervals."""
        clock = FakeClock()
        source = DiscoveringSource([pool("a")])
        poller = discovering_poller(source, clock)
        snapshot = asyncio.run(poller.run_cycle())
        (found,) = [i for i in snapshot.items if i.key.api is Api.POOLS]
        (polled,) = [i for i in snapshot.items if i.key.api is Api.WORKLOAD_STATISTICS]
        assert found.stale_after == 3 * REFRESH
        assert snapshot.is_fresh(found, clock.now + 3 * REFRESH - 1)
        assert not snapshot.is_fresh(found, clock.now + 3 * REFRESH)
        assert not snapshot.is_fresh(polled, clock.now + 3 * INTERVAL)


class TestIndependentTargets:
    def test_a_slow_target_never_delays_another_targets_publication(self) -> None:
        """While one project's cycle hangs on a slow API, the other project's cycles keep
        running on their ticks and each publishes its fresh data."""
        ledger = RequestLedger()
        clock = SystemClock()
        fast = FakeSource({"fast": returns(stats(1))})
        hung = FakeSource({"hung": returns(stats(1))}, delay=2.0)
        published: list[Snapshot] = []

        async def publish(snapshot: Snapshot) -> None:
            published.append(snapshot)

        def target(project: str, source: FakeSource, pool_name: str) -> TargetPoller:
            key = ItemKey(project, Api.WORKLOAD_STATISTICS, pool_name)
            return TargetPoller(project, [key], source, 1, clock, ledger, LOG)

        targets = [target(PROJECT, fast, "fast"), target(OTHER, hung, "hung")]
        poller = poller_of(targets, clock, ledger, interval=0.1, publish=publish)

        async def scenario() -> list[Snapshot]:
            task = asyncio.create_task(poller.run(asyncio.Event()))
            await asyncio.sleep(0.75)
            seen = list(published)
            task.cancel()
            return seen

        published = asyncio.run(scenario())
        cycles = dict(published[-1].cycles)
        assert cycles[PROJECT].cycles >= 6
        assert cycles[OTHER].cycles == 0
        assert len(fast.calls) >= 6
        fresh = [s for s in published if any(i.key.name == "fast" for i in s.items)]
        successes = sorted({i.last_success for s in fresh for i in s.items if i.last_success})
        assert len(successes) >= 6
        assert not poller.ready()

    def test_a_refused_target_never_blanks_another(self) -> None:
        """A project whose key is refused backs off alone; the other keeps being polled every
        cycle with its data shown."""
        clock = FakeClock()
        ledger = RequestLedger()
        good = FakeSource({"a": returns(stats(1))})
        refused = FakeSource({"b": raises(auth_error())})
        keys = {
            p: ItemKey(proj, Api.WORKLOAD_STATISTICS, p)
            for p, proj in (("a", PROJECT), ("b", OTHER))
        }
        targets = [
            TargetPoller(PROJECT, [keys["a"]], good, 1, clock, ledger, LOG),
            TargetPoller(OTHER, [keys["b"]], refused, 1, clock, ledger, LOG),
        ]
        poller = poller_of(targets, clock, ledger, interval=INTERVAL)
        for _ in range(5):
            snapshot = asyncio.run(poller.run_cycle())
            clock.now += INTERVAL
        assert len(good.calls) == 5
        assert len(refused.calls) < 5
        a = next(i for i in snapshot.items if i.key.name == "a")
        assert a.success
        assert snapshot.is_fresh(a, clock.now - INTERVAL)
        assert dict(snapshot.up) == {PROJECT: True, OTHER: False}


def run_for(poller: Poller, seconds: float) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(poller.run(asyncio.Event()))
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(scenario())


def independent(targets: list[TargetPoller], ledger: RequestLedger, publish: Publish) -> Poller:
    return poller_of(targets, SystemClock(), ledger, interval=0.1, publish=publish)


def instant_target(project: str, ledger: RequestLedger) -> TargetPoller:
    key = ItemKey(project, Api.WORKLOAD_STATISTICS, "a")
    source = FakeSource({"a": returns(stats(1))})
    return TargetPoller(project, [key], source, 1, SystemClock(), ledger, LOG)


class TestPublishing:
    def test_many_targets_share_renders(self) -> None:
        """Twenty targets cycling every 0.1 s with a render taking 0.05 s cost at most one
        render at a time, never one per target cycle, and no target skips a cycle."""
        ledger = RequestLedger()
        renders: list[float] = []
        rendering = 0

        async def publish(snapshot: Snapshot) -> None:
            nonlocal rendering
            rendering += 1
            assert rendering == 1, "two renders at once"
            renders.append(time.monotonic())
            await asyncio.sleep(0.05)
            rendering -= 1

        projects = [f"{i:032d}" for i in range(20)]
        poller = independent([instant_target(p, ledger) for p in projects], ledger, publish)
        run_for(poller, 0.55)
        cycles = sum(stats.cycles for _, stats in poller.snapshot.cycles)
        assert cycles >= 20 * 5
        assert len(renders) <= 0.55 / 0.05 + 1
        assert all(stats.skipped == 0 for _, stats in poller.snapshot.cycles)

    def test_ready_only_once_every_first_cycle_is_published(self) -> None:
        """Readiness waits until a published snapshot holds every target's first cycle."""
        ledger = RequestLedger()
        seen: list[tuple[bool, int]] = []
        poller: Poller

        async def publish(snapshot: Snapshot) -> None:
            seen.append((poller.ready(), len(snapshot.cycles)))
            await asyncio.sleep(0.2)

        poller = independent([instant_target(p, ledger) for p in (PROJECT, OTHER)], ledger, publish)
        run_for(poller, 0.5)
        assert seen[0][0] is False
        assert poller.ready()

    def test_a_crashing_cycle_costs_that_target_one_cycle(self) -> None:
        """A bug escaping one target's cycle is logged; that target goes on at its next
        tick and the other target never notices."""
        ledger = RequestLedger()

        class Crashing(TargetPoller):
            calls = 0

            async def poll(
                self,
                previous: dict[ItemKey, ItemState],
                tick: float | None = None,
                deadline: float | None = None,
            ) -> list[Outcome]:
                Crashing.calls += 1
                if Crashing.calls == 2:
                    raise KeyError("bug")
                return await super().poll(previous, tick, deadline)

        key = ItemKey(OTHER, Api.WORKLOAD_STATISTICS, "b")
        crashing = Crashing(
            OTHER, [key], FakeSource({"b": returns(stats(1))}), 1, SystemClock(), ledger, LOG
        )
        poller = independent(
            [instant_target(PROJECT, ledger), crashing], ledger, lambda s: asyncio.sleep(0)
        )
        run_for(poller, 0.55)
        cycles = dict(poller.snapshot.cycles)
        assert Crashing.calls >= 5
        assert cycles[OTHER].cycles == Crashing.calls - 1
        assert cycles[PROJECT].cycles >= 5

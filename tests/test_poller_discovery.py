"""The poller with pool discovery, and targets that never hold each other up."""

from __future__ import annotations

import asyncio
import re

from exporter.config import Discovery
from exporter.discovery import PoolDiscovery
from exporter.errors import ErrorDetail, TransportError
from exporter.models import Api, ItemKey, Pool, PoolList, Snapshot
from exporter.poller import Poller, RequestLedger, SystemClock, TargetPoller
from tests.test_poller import (
    LOG,
    PROJECT,
    FakeClock,
    FakeSource,
    auth_error,
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

    async def publish(snapshot: Snapshot) -> None:
        pass

    return Poller(
        [target],
        interval=INTERVAL,
        stale_after=3 * INTERVAL,
        jitter=0.0,
        publish=publish,
        clock=clock,
        ledger=ledger,
        log=LOG,
    )


def targets(snapshot: Snapshot, api: Api = Api.WORKLOAD_STATISTICS) -> list[str]:
    return [i.key.target for i in snapshot.items if i.key.api is api]


class TestDiscovery:
    def test_discovery_goes_first_and_its_pools_are_polled_in_the_same_cycle(self) -> None:
        """ListPools is the cycle's first request; the pools it lists are polled right after."""
        source = DiscoveringSource([pool("a"), pool("b")])
        snapshot = asyncio.run(discovering_poller(source, FakeClock()).run_cycle())
        assert source.calls[0] == "list_pools"
        assert sorted(source.calls[1:]) == ["a", "b"]
        assert targets(snapshot) == ["a", "b"]
        (found,) = [i for i in snapshot.items if i.key.api is Api.POOLS]
        assert found.key.target == "0"
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
        """After a refresh a new pool is polled and a pool no longer listed leaves the
        snapshot entirely, health series included."""
        clock = FakeClock()
        source = DiscoveringSource([pool("a"), pool("b")])
        poller = discovering_poller(source, clock)
        asyncio.run(poller.run_cycle())
        source.found = [pool("b"), pool("c")]
        clock.now += REFRESH
        snapshot = asyncio.run(poller.run_cycle())
        assert targets(snapshot) == ["b", "c"]
        assert "a" not in source.calls[source.calls.index("list_pools", 1) :]

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
        assert (found.success, found.error_code) == (False, "timeout")
        assert isinstance(found.data, PoolList)
        assert targets(snapshot) == ["a"]

    def test_refused_discovery_sends_nothing_else(self) -> None:
        """A 401 on ListPools (the cycle's probe) stops the target: no pool is polled."""
        clock = FakeClock()
        source = DiscoveringSource([pool("a"), pool("b")])
        poller = discovering_poller(source, clock)
        asyncio.run(poller.run_cycle())
        source.failure = auth_error()
        clock.now += REFRESH
        calls = len(source.calls)
        snapshot = asyncio.run(poller.run_cycle())
        assert source.calls[calls:] == ["list_pools"]
        codes = {i.key.target: i.error_code for i in snapshot.items}
        assert codes == {
            "0": "APIGW.0301",
            "a": "skipped_auth_failure",
            "b": "skipped_auth_failure",
        }

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

        poller = Poller(
            [target(PROJECT, fast, "fast"), target(OTHER, hung, "hung")],
            interval=0.1,
            stale_after=0.3,
            jitter=0.0,
            publish=publish,
            clock=clock,
            ledger=ledger,
            log=LOG,
        )

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
        fresh = [s for s in published if any(i.key.target == "fast" for i in s.items)]
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
        poller = Poller(
            [
                TargetPoller(PROJECT, [keys["a"]], good, 1, clock, ledger, LOG),
                TargetPoller(OTHER, [keys["b"]], refused, 1, clock, ledger, LOG),
            ],
            interval=INTERVAL,
            stale_after=3 * INTERVAL,
            jitter=0.0,
            publish=lambda snapshot: asyncio.sleep(0),
            clock=clock,
            ledger=ledger,
            log=LOG,
        )
        for _ in range(5):
            snapshot = asyncio.run(poller.run_cycle())
            clock.now += INTERVAL
        assert len(good.calls) == 5
        assert len(refused.calls) < 5
        a = next(i for i in snapshot.items if i.key.target == "a")
        assert a.success
        assert snapshot.is_fresh(a, clock.now - INTERVAL)
        assert dict(snapshot.up) == {PROJECT: True, OTHER: False}

"""``exporter.discovery.PoolDiscovery``: which listed pools are taken and polled, and when
ListPools is asked again. Plain data in and out; time is the ``now`` passed in."""

from __future__ import annotations

import doctest
import re
from collections.abc import Callable

import pytest

from exporter import discovery as discovery_module
from exporter.config import Discovery
from exporter.discovery import DEFAULT_WORKSPACE, PoolDiscovery
from exporter.models import Api, ItemKey, Pool, PoolList
from exporter.sharding import Shard

PROJECT = "0123456789abcdef0123456789abcdef"


def pool(name: str, phase: str = "Running", display_name: str = "") -> Pool:
    return Pool(name, display_name, "Dedicate", "0", phase, (), ())


def listed(*pools: Pool) -> PoolList:
    return PoolList(pools)


def workload(name: str) -> ItemKey:
    """The workload item of pool ``name`` in ``PROJECT``."""
    return ItemKey(PROJECT, Api.WORKLOAD_STATISTICS, name)


def found(
    rules: Discovery | None = None,
    owns: Callable[[ItemKey], bool] = lambda key: True,
    slack: float = 0.0,
) -> PoolDiscovery:
    return PoolDiscovery(PROJECT, rules or Discovery(), owns, slack)


def names(pools: PoolList) -> list[str]:
    return [p.name for p in pools.pools]


class TestKey:
    def test_default_workspace(self) -> None:
        """Without a workspace_id the discovery item's target is "0", ModelArts' default."""
        key = found().key
        assert key == ItemKey(PROJECT, Api.POOLS, "0")
        assert DEFAULT_WORKSPACE == "0"

    def test_configured_workspace(self) -> None:
        """With a workspace_id the discovery item's target is that workspace."""
        assert found(Discovery(workspace_id="ws-1")).key == ItemKey(PROJECT, Api.POOLS, "ws-1")

    def test_stale_after_is_kept(self) -> None:
        """The staleness limit given is the one the poller reads back."""
        limit = PoolDiscovery(PROJECT, Discovery(), lambda key: True, 30, stale_after=900.0)
        assert limit.stale_after == 900.0
        assert found().stale_after is None


class TestAccept:
    def test_rules_filter_and_order_is_kept(self) -> None:
        """Only the pools the include/exclude rules select are taken, in the listed order."""
        rules = Discovery(
            include=(re.compile("gpu-.*"), re.compile("Prod .*")),
            exclude=(re.compile(".*-test"),),
        )
        discovery = found(rules)
        taken = discovery.accept(
            listed(
                pool("gpu-2"),
                pool("cpu-1"),
                pool("pool-9", display_name="Prod A"),
                pool("gpu-test"),
                pool("gpu-1", display_name="Prod-test"),
                pool("gpu-0"),
            ),
            0,
        )
        assert names(taken) == ["gpu-2", "pool-9", "gpu-0"]
        assert discovery.pool_items == (workload("gpu-0"), workload("gpu-2"), workload("pool-9"))

    def test_only_the_taken_pools_unreadable_fields_are_kept(self) -> None:
        """Unreadable fields of pools the rules or another shard leave out are not this
        target's to count: only those of the pools taken stay in ``problems``."""
        odd = Pool("gpu-1", "", "", "0", "Running", (), (), problems=("$.items[0].spec: x",))
        left = Pool("cpu-1", "", "", "0", "Running", (), (), problems=("$.items[1].spec: y",))
        discovery = found(Discovery(include=(re.compile("gpu-.*"),)))
        taken = discovery.accept(PoolList((odd, left), problems=("both",)), 0)
        assert names(taken) == ["gpu-1"]
        assert taken.problems == ("$.items[0].spec: x",)

    def test_owns_is_asked_with_the_workload_item(self) -> None:
        """``owns`` decides on each selected pool's workload item; the others are not taken."""
        asked: list[ItemKey] = []

        def owns(key: ItemKey) -> bool:
            asked.append(key)
            return key.name != "pool-b"

        discovery = found(Discovery(exclude=(re.compile("pool-c"),)), owns)
        taken = discovery.accept(listed(pool("pool-a"), pool("pool-b"), pool("pool-c")), 0)
        assert names(taken) == ["pool-a"]
        assert asked == [workload("pool-a"), workload("pool-b")]
        assert discovery.pool_items == (workload("pool-a"),)

    def test_unpolled_phases_are_taken_but_not_polled(self) -> None:
        """Pools creating, deleting or in error are taken (published) but their jobs are not
        polled; every other phase, unknown or missing ones included, is polled."""
        phases = ("Creating", "Running", "Abnormal", "Deleting", "Error", "Upgrading", "")
        pools = [pool(f"pool-{i}-{phase or 'none'}", phase) for i, phase in enumerate(phases)]
        discovery = found()
        assert discovery.accept(listed(*pools), 0).pools == tuple(pools)
        assert [key.name for key in discovery.pool_items] == [
            "pool-1-Running",
            "pool-2-Abnormal",
            "pool-5-Upgrading",
            "pool-6-none",
        ]

    def test_pool_items_sorted_and_empty_before_first_answer(self) -> None:
        """There is nothing to poll before the first answer; then the items are sorted by name."""
        discovery = found()
        assert not discovery.pool_items
        discovery.accept(listed(pool("pool-c"), pool("pool-a"), pool("pool-b")), 0)
        assert [key.name for key in discovery.pool_items] == ["pool-a", "pool-b", "pool-c"]

    def test_a_new_answer_replaces_the_last(self) -> None:
        """A pool missing from the next answer, or now deleting, is no longer polled."""
        discovery = found()
        discovery.accept(listed(pool("pool-a"), pool("pool-b"), pool("pool-c")), 0)
        taken = discovery.accept(listed(pool("pool-a", "Deleting"), pool("pool-c")), 300)
        assert names(taken) == ["pool-a", "pool-c"]
        assert discovery.pool_items == (workload("pool-c"),)

    def test_nothing_listed(self) -> None:
        """An empty answer takes no pools and leaves nothing to poll."""
        discovery = found()
        discovery.accept(listed(pool("pool-a")), 0)
        assert discovery.accept(listed(), 300) == PoolList(())
        assert discovery.pool_items == ()

    @pytest.mark.parametrize("total", [1, 2, 3, 5])
    def test_shards_partition_the_taken_pools(self, total: int) -> None:
        """n exporters, each owning its shard, take every selected pool exactly once between
        them and no excluded pool at all."""
        pools = listed(*(pool(f"pool-{i:02}", display_name=f"Team {i % 4}") for i in range(60)))
        rules = Discovery(exclude=(re.compile("Team 3"),))
        selected = [p.name for p in pools.pools if rules.selects(p.name, p.display_name)]
        taken = [names(found(rules, Shard(i, total).owns).accept(pools, 0)) for i in range(total)]
        together = [name for share in taken for name in share]
        assert sorted(together) == sorted(selected)
        assert len(together) == len(set(together)) == 45
        if total > 1:
            assert all(len(share) < len(selected) for share in taken)


class TestDue:
    def test_due_before_the_first_answer(self) -> None:
        """Until an answer is accepted, ListPools is due at any time (a failure asks again)."""
        discovery = found(slack=30)
        assert discovery.due(0)
        assert discovery.due(-1e9)
        discovery.accept(listed(pool("pool-a")), 1000)
        assert not discovery.due(1000)

    @pytest.mark.parametrize("slack", [0.0, 30.0])
    def test_due_refresh_interval_after_the_answer_less_slack(self, slack: float) -> None:
        """After an answer at t, ListPools is due again from t + refresh_interval - slack."""
        discovery = found(Discovery(refresh_interval=300), slack=slack)
        discovery.accept(listed(), 1000)
        assert not discovery.due(1000 + 300 - slack - 0.001)
        assert discovery.due(1000 + 300 - slack)
        assert discovery.due(1000 + 10_000)

    def test_each_answer_restarts_the_interval(self) -> None:
        """The next refresh counts from the cycle of the latest accepted answer."""
        discovery = found(Discovery(refresh_interval=600), slack=5)
        discovery.accept(listed(), 0)
        discovery.accept(listed(), 595)
        assert not discovery.due(1189)
        assert discovery.due(1190)


class TestModuleExample:
    def test_docstring_example_holds(self) -> None:
        """The example in the module docstring runs as written."""
        result = doctest.testmod(discovery_module)
        assert result.failed == 0
        assert result.attempted >= 8

"""Pool discovery for one target: which pools ListPools found, which of them this exporter
polls, and when to ask ListPools again.

- **Taken** are the pools the target's ``discovery`` rules select (include/exclude on name
  and display name, see :class:`~exporter.config.Discovery`) and that this exporter's shard
  owns. Only those are published (``modelarts_pool_info``, phase, nodes), so n shards
  together publish each pool once.
- **Polled** (ShowWorkloadStatistics) are the taken pools except those in a phase without
  workloads to count: ``Creating``, ``Deleting`` and ``Error``. Their phase is still shown.
- **Refresh.** A successful ListPools is next asked ``refresh_interval`` later. A failed one
  is asked again after 1, 2, 4 ... poll intervals (at most ``refresh_interval``), and
  meanwhile the last good list is kept and polled. A pool of the list that answers "pool
  not found" makes the next cycle refresh.

::

    >>> import re
    >>> from exporter.config import Config, Discovery, Target
    >>> from exporter.models import Pool, PoolList
    >>> def pool(name, phase="Running"):
    ...     return Pool(name, name.upper(), "Dedicate", "0", phase, (), ())
    >>> rules = Discovery(exclude=(re.compile("test-.*"),), refresh_interval=300)
    >>> found = PoolDiscovery("p" * 32, rules, owns=lambda key: True, slack=30)
    >>> taken = found.accept(PoolList((pool("a"), pool("b", "Creating"), pool("test-c"))), 0)
    >>> [p.name for p in taken.pools], [k.name for k in found.pool_items]
    (['a', 'b'], ['a'])
    >>> found.due(269), found.due(270), found.listed
    (False, True, True)
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.config import Config, Discovery, Target
from exporter.models import Api, ItemKey, PoolList, problems_of
from exporter.sharding import UNSHARDED, Shard

__all__ = ["DEFAULT_WORKSPACE", "UNPOLLED_PHASES", "PoolDiscovery", "discovery_of"]

#: Phases in which a pool has no workloads to count: it is shown, its jobs are not polled.
UNPOLLED_PHASES = frozenset({"Creating", "Deleting", "Error"})
#: The workspace ModelArts lists when none is given.
DEFAULT_WORKSPACE = "0"


class PoolDiscovery:
    """The discovered pools of one target, and when ListPools is due.

    ``owns`` says whether this exporter's shard polls a pool's workload item; ``slack``
    (half the poll interval, or the jitter if larger) lets a refresh that falls due just
    after a cycle's start run in that cycle, not one interval late. ``poll_interval`` is
    the first wait after a failed refresh (default ``2 * slack``).
    """

    def __init__(
        self,
        project_id: str,
        rules: Discovery,
        owns: Callable[[ItemKey], bool],
        slack: float,
        stale_after: float | None = None,
        poll_interval: float | None = None,
    ) -> None:
        #: The discovery item: its ``target`` is the workspace id.
        self.key = ItemKey(project_id, Api.POOLS, rules.workspace_id or DEFAULT_WORKSPACE)
        self.rules = rules
        #: How old the discovered data may get before it leaves /metrics.
        self.stale_after = stale_after
        self._owns = owns
        self._slack = slack
        self._retry = 2 * slack if poll_interval is None else poll_interval
        self._failures = 0
        self._next = float("-inf")
        self._polled: tuple[ItemKey, ...] = ()
        #: Whether a ListPools answer has been taken yet.
        self.listed = False

    @property
    def pool_items(self) -> tuple[ItemKey, ...]:
        """The workload items of the discovered pools to poll, by pool name."""
        return self._polled

    def due(self, now: float) -> bool:
        """Whether ListPools should be asked in a cycle that starts at monotonic ``now``."""
        return now + self._slack >= self._next

    def accept(self, found: PoolList, now: float) -> PoolList:
        """Take a ListPools answer of the cycle that started at ``now``; return the pools
        taken (the data to publish)."""
        project = self.key.project_id
        taken = tuple(
            pool
            for pool in found.pools
            if self.rules.selects(pool.name, pool.display_name)
            and self._owns(ItemKey(project, Api.WORKLOAD_STATISTICS, pool.name))
        )
        self._polled = tuple(
            sorted(
                ItemKey(project, Api.WORKLOAD_STATISTICS, pool.name)
                for pool in taken
                if pool.phase not in UNPOLLED_PHASES
            )
        )
        self._next = now + self.rules.refresh_interval
        self._failures = 0
        self.listed = True
        return PoolList(taken, problems=problems_of(taken))

    def failed(self, now: float) -> None:
        """ListPools failed in the cycle that started at ``now``: ask again after 1, 2, 4 ...
        poll intervals, at most ``refresh_interval``, so a failing ListPools costs a cycle
        now and then, not every cycle."""
        self._failures += 1
        wait = self._retry * 2.0 ** (self._failures - 1)
        self._next = now + min(self.rules.refresh_interval, wait)

    def expire(self) -> None:
        """Make the next cycle refresh (a listed pool turned out not to exist)."""
        self._next = float("-inf")


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

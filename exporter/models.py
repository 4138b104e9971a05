"""Plain, immutable data: what the APIs returned, and the ``Snapshot`` the poller publishes.

Nothing here does I/O. The poller builds a new ``Snapshot`` at the end of every target's
cycle and swaps it in whole; the collector and the exposition cache only ever read one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "JOB_STATUSES",
    "JOB_TYPES",
    "LONE_SURROGATE",
    "NODE_STATES",
    "NO_LIMITS",
    "POOL_PHASES",
    "Api",
    "CallLimits",
    "ConfigStatus",
    "CycleStats",
    "ItemKey",
    "ItemState",
    "JobTypeStatistics",
    "Pool",
    "PoolFlavor",
    "PoolList",
    "ResourceSpec",
    "ResourceSpecs",
    "Snapshot",
    "WorkloadStatistics",
    "problems_of",
]

#: A character UTF-8 cannot encode: a string holding one can be neither a label value nor
#: sent. json.loads joins valid surrogate pairs, so any surrogate left in a str is a lone one.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Api(StrEnum):
    """The polled ModelArts APIs; the value is the ``api`` label."""

    WORKLOAD_STATISTICS = "workload_statistics"
    RESOURCE_SPECS = "resource_specs"
    POOLS = "pools"


#: Documented ShowWorkloadStatistics job types (``statistics.items[].type``).
JOB_TYPES = ("train", "infer", "notebook")
#: Documented ShowWorkloadStatistics status keys, lower-cased, in the documented order.
JOB_STATUSES = (
    "queue",
    "pending",
    "abnormal",
    "terminating",
    "creating",
    "running",
    "completed",
    "terminated",
    "failed",
)


@dataclass(frozen=True, slots=True)
class JobTypeStatistics:
    """One ``statistics.items[]`` entry: jobs of one type in one pool."""

    job_type: str
    total: float | None
    #: (lower-cased status, count) in the order the API returned them; the client's
    #: ``parse.zero_filled`` puts every documented status first, 0 when left out.
    statuses: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class WorkloadStatistics:
    """ShowWorkloadStatistics for one pool (after ``parse.zero_filled``: every documented job
    type first, one the API left out with no jobs)."""

    job_types: tuple[JobTypeStatistics, ...]


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """One entry of QueryJobResourceSpecs ``specs[]``; numbers are None when not a number."""

    spec_code: str
    spec_id: str
    gpu_type: str
    storage: str
    interface_type: str
    no_resource: bool | None
    gpus: float | None
    cpu_cores: float | None
    memory_gib: float | None
    max_nodes: float | None
    pricing_units: float | None


@dataclass(frozen=True, slots=True)
class ResourceSpecs:
    """QueryJobResourceSpecs for one job type."""

    total_count: float | None
    specs: tuple[ResourceSpec, ...]
    #: Fields there but unreadable, as "JSON path: what was wrong" (``parse``).
    problems: tuple[str, ...] = ()


#: Documented ListPools ``status.phase`` values, in lifecycle order.
POOL_PHASES = ("Creating", "Running", "Abnormal", "Deleting", "Error")
#: Documented keys of ListPools ``status.resources``: node states.
NODE_STATES = ("available", "abnormal", "creating", "deleting")


@dataclass(frozen=True, slots=True)
class PoolFlavor:
    """One ListPools ``spec.resources[]`` entry: the nodes a pool is configured for."""

    flavor: str
    count: float | None
    max_count: float | None


@dataclass(frozen=True, slots=True)
class Pool:
    """One ListPools ``items[]`` entry; strings are "" when the API left them out."""

    #: ``metadata.name``: the pool id that ShowWorkloadStatistics takes as ``{pool_name}``
    name: str
    display_name: str
    pool_type: str
    workspace_id: str
    phase: str
    flavors: tuple[PoolFlavor, ...]
    #: (flavor, node state, nodes) from ``status.resources``, summed per flavor and state
    nodes: tuple[tuple[str, str, float], ...]
    #: Fields of this entry there but unreadable, as "JSON path: what was wrong" (``parse``).
    problems: tuple[str, ...] = ()


def problems_of(pools: Iterable[Pool]) -> tuple[str, ...]:
    """The unreadable fields of ``pools``' entries (of the pools a target takes, say)."""
    return tuple(problem for pool in pools for problem in pool.problems)


@dataclass(frozen=True, slots=True)
class PoolList:
    """ListPools for one project, after the target's include/exclude rules and sharding."""

    pools: tuple[Pool, ...]
    #: Fields there but unreadable, as "JSON path: what was wrong" (``parse``).
    problems: tuple[str, ...] = ()


Result = WorkloadStatistics | ResourceSpecs | PoolList


@dataclass(frozen=True, slots=True, order=True)
class ItemKey:
    """One polled item of a target (a project): a pool's workload statistics, a job type's
    resource specs, or the target's pool discovery."""

    project_id: str
    api: Api
    #: the pool name (workload_statistics), the job type (resource_specs) or the
    #: workspace id (pools: discovery); the label ``target`` of the item's health series
    name: str


@dataclass(frozen=True, slots=True)
class ItemState:
    """What is known about one item after the latest cycle."""

    key: ItemKey
    success: bool
    duration_seconds: float
    #: Unix time of the latest success; None before the first.
    last_success: float | None
    #: The last good result, kept across failures; None when never polled or gone.
    data: Result | None
    #: The bounded error code of the latest failure, None after a success.
    error_code: str | None = None
    #: How old the data may get before it leaves /metrics; None: the snapshot's
    #: ``stale_after_seconds``. Discovery, refreshed less often, allows longer.
    stale_after: float | None = None

    def expires(self, default: float) -> float | None:
        """The Unix time the data goes stale; None without data."""
        if self.data is None or self.last_success is None:
            return None
        return self.last_success + (default if self.stale_after is None else self.stale_after)


@dataclass(frozen=True, slots=True)
class CycleStats:
    """Cumulative poller counters, copied into every snapshot."""

    cycles: int = 0
    skipped: int = 0
    last_duration_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ConfigStatus:
    """How the configuration was last (re)loaded, as Prometheus reports its own."""

    #: Whether the last load or reload worked (a failed reload keeps the old config).
    last_reload_successful: bool = True
    #: Unix time of the last successful load, the initial one included.
    last_success: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything /metrics shows, as of one instant. Never mutated after construction."""

    poll_interval_seconds: float
    stale_after_seconds: float
    items: tuple[ItemState, ...] = ()
    #: project_id -> whether the last cycle reached ModelArts with accepted credentials
    up: tuple[tuple[str, bool], ...] = ()
    #: project_id -> the region of the project (its target's ``region``), a label of every
    #: per-project series
    regions: tuple[tuple[str, str], ...] = ()
    #: (project_id, api, http status or "none") -> requests sent
    requests: tuple[tuple[tuple[str, str, str], int], ...] = ()
    #: (project_id, api, error code) -> failed polls
    errors: tuple[tuple[tuple[str, str, str], int], ...] = ()
    #: project_id -> that target's poll loop counters
    cycles: tuple[tuple[str, CycleStats], ...] = ()
    #: project_id -> whether ModelArts refused the credentials (401/403) and no request has
    #: been accepted since
    credentials_refused: tuple[tuple[str, bool], ...] = ()
    #: project_id -> whether the last read of its credential files worked (True when its
    #: credentials come from no file)
    credentials_read: tuple[tuple[str, bool], ...] = ()
    #: project_id -> Unix time its credentials in use expire, where known (an IAM token,
    #: temporary AK/SK from the metadata service)
    credentials_expiry: tuple[tuple[str, float], ...] = ()
    #: (index, total) of the exporter's shard (``exporter.sharding.Shard``); (0, 1) unsharded
    shard: tuple[int, int] = (0, 1)
    #: project_id -> requests per second its request budget allows now
    request_rates: tuple[tuple[str, float], ...] = ()
    #: the last configuration (re)load
    config: ConfigStatus = ConfigStatus()

    def is_fresh(self, item: ItemState, now: float) -> bool:
        """Whether ``item``'s data may still be shown at ``now`` (not older than stale_after)."""
        expires = item.expires(self.stale_after_seconds)
        return expires is not None and now < expires

    def expires_at(self, now: float) -> float | None:
        """The next moment after ``now`` when shown data goes stale (the exposition changes)."""
        moments = (item.expires(self.stale_after_seconds) for item in self.items)
        return min((m for m in moments if m is not None and m > now), default=None)


@dataclass(frozen=True)
class CallLimits:
    """Bounds of one call, set by the poller: at most ``attempts`` attempts (None: the
    retry policy's), none started and none waited for past ``time_left`` seconds from the
    call (None: no deadline). A call whose first attempt is cut by the deadline, or cannot
    start before it, fails as ``deadline_exceeded``. A retry that would start after the
    deadline is not made, and one cut by it is not waited for: the previous attempt's error
    is raised then, with a note saying so."""

    attempts: int | None = None
    time_left: float | None = None


NO_LIMITS = CallLimits()

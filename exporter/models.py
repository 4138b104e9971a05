"""Plain, immutable data: what the APIs returned, and the ``Snapshot`` the poller publishes.

Nothing here does I/O. The poller builds a new ``Snapshot`` at the end of every cycle and
swaps it in whole; the collector and the exposition cache only ever read one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "Api",
    "CycleStats",
    "ItemKey",
    "ItemState",
    "JobTypeStatistics",
    "ResourceSpec",
    "ResourceSpecs",
    "Snapshot",
    "WorkloadStatistics",
]


class Api(StrEnum):
    """The polled ModelArts APIs; the value is the ``api`` label."""

    WORKLOAD_STATISTICS = "workload_statistics"
    RESOURCE_SPECS = "resource_specs"


@dataclass(frozen=True, slots=True)
class JobTypeStatistics:
    """One ``statistics.items[]`` entry: jobs of one type in one pool."""

    job_type: str
    total: float | None
    #: (lower-cased status, count) in the order the API returned them.
    statuses: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class WorkloadStatistics:
    """ShowWorkloadStatistics for one pool."""

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


Result = WorkloadStatistics | ResourceSpecs


@dataclass(frozen=True, slots=True, order=True)
class ItemKey:
    """One polled item: a pool's workload statistics or a job type's resource specs."""

    project_id: str
    api: Api
    #: the pool name (workload_statistics) or the job type (resource_specs)
    target: str


@dataclass(frozen=True, slots=True)
class ItemState:
    """What is known about one item after the latest cycle."""

    key: ItemKey
    success: bool
    duration_seconds: float
    #: Unix time of the latest attempt / success; None before the first.
    last_attempt: float | None
    last_success: float | None
    #: The last good result, kept across failures; None when never polled or gone.
    data: Result | None
    #: The bounded error code of the latest failure, None after a success.
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class CycleStats:
    """Cumulative poller counters, copied into every snapshot."""

    cycles: int = 0
    skipped: int = 0
    last_duration_seconds: float = 0.0
    last_finished: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything /metrics shows, as of one instant. Never mutated after construction."""

    poll_interval_seconds: float
    stale_after_seconds: float
    items: tuple[ItemState, ...] = ()
    #: project_id -> whether the last cycle reached ModelArts with accepted credentials
    up: tuple[tuple[str, bool], ...] = ()
    #: (project_id, api, http status or "none") -> requests sent
    requests: tuple[tuple[tuple[str, str, str], int], ...] = ()
    #: (project_id, api, error code) -> failed polls
    errors: tuple[tuple[tuple[str, str, str], int], ...] = ()
    cycle: CycleStats = field(default_factory=CycleStats)
    #: (index, total) of the exporter's shard (``exporter.sharding.Shard``); (0, 1) unsharded
    shard: tuple[int, int] = (0, 1)
    #: project_id -> requests per second its request budget allows now
    request_rates: tuple[tuple[str, float], ...] = ()

    def is_fresh(self, item: ItemState, now: float) -> bool:
        """Whether ``item``'s data may still be shown at ``now`` (not older than stale_after)."""
        return (
            item.data is not None
            and item.last_success is not None
            and now - item.last_success < self.stale_after_seconds
        )

    def expires_at(self, now: float) -> float | None:
        """The next moment after ``now`` when shown data goes stale (the exposition changes)."""
        moments = [
            item.last_success + self.stale_after_seconds
            for item in self.items
            if item.data is not None and item.last_success is not None
        ]
        return min((m for m in moments if m > now), default=None)

"""Snapshot → fresh Prometheus metric families. No I/O, no state: the same snapshot and
``now`` always give the same families. They are made by a ``Maker``: text families that
write the exposition directly (``render_text``, what /metrics serves), or prometheus_client's
(``SnapshotCollector``, for OpenMetrics).

Workload statistics (one pool, ``statistics.items[]``)::

    modelarts_pool_jobs{project_id="…",pool="pool-a",type="train",status="running"} 3
    modelarts_pool_type_jobs{project_id="…",pool="pool-a",type="train"} 14

Resource specs (one job type, ``specs[]``)::

    modelarts_spec_no_resource{project_id="…",job_type="train",spec_code="modelarts.vm.gpu.v100"} 0
    modelarts_spec_info{…,spec_id="4",gpu_type="v100",storage="",interface_type="1"} 1
    modelarts_spec_gpus{…} 1   (and _cpu_cores, _memory_bytes, _max_nodes, _pricing_units)
    modelarts_specs{project_id="…",job_type="train"} 2

Pool discovery (ListPools, one series set per discovered pool)::

    modelarts_pool_info{project_id="…",pool="pool-a",display_name="Training",
                        pool_type="Dedicate",workspace_id="0"} 1
    modelarts_pool_phase{project_id="…",pool="pool-a",phase="Running"} 1   (0 for every other phase)
    modelarts_pool_nodes{project_id="…",pool="pool-a",flavor="…",state="abnormal"} 1
    modelarts_pool_spec_nodes{…,flavor="…"} 4   (and modelarts_pool_spec_max_nodes)

The exporter's own health families (``modelarts_up``, ``modelarts_poll_*``, counters,
cycles, reloads) are ``exporter.selfmetrics``'s; ``families`` yields them after these. Data
older than ``stale_after`` is left out; health series stay so that an operator can see why.

Every series of a project has ``region`` (its target's) after ``project_id``; the examples
above leave it out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.families import PROJECT, F, Maker, Regions, client_family, every_text
from exporter.models import (
    NODE_STATES,
    POOL_PHASES,
    ItemState,
    PoolList,
    ResourceSpec,
    ResourceSpecs,
    Snapshot,
    WorkloadStatistics,
)
from exporter.selfmetrics import health_families
from exporter.textformat import TextFamily
from exporter.textformat import join as join_text

__all__ = ["SnapshotCollector", "client_family", "families", "render_text"]

GIB = 2**30
_SPEC = [*PROJECT, "job_type", "spec_code"]


def workload_families(
    items: Iterable[ItemState], regions: Regions, every: str, make: Maker[F]
) -> Iterator[F]:
    """The ShowWorkloadStatistics families."""
    jobs = make(
        "gauge",
        "modelarts_pool_jobs",
        f"Jobs in a dedicated resource pool by job type and status, {every}.",
        [*PROJECT, "pool", "type", "status"],
    )
    totals = make(
        "gauge",
        "modelarts_pool_type_jobs",
        f"Jobs of one type in a dedicated resource pool (the item's total), {every}.",
        [*PROJECT, "pool", "type"],
    )
    for item in items:
        if not isinstance(item.data, WorkloadStatistics):
            continue
        project, pool = item.key.project_id, item.key.name
        region = regions.get(project, "")
        for stats in item.data.job_types:
            for status, count in stats.statuses:
                jobs.add_metric([project, region, pool, stats.job_type, status], count)
            if stats.total is not None:
                totals.add_metric([project, region, pool, stats.job_type], stats.total)
    yield jobs
    yield totals


@dataclass(frozen=True)
class _Numeric:
    name: str
    help: str
    value: Callable[[ResourceSpec], float | None]


_NUMERIC = (
    _Numeric("modelarts_spec_gpus", "GPUs/NPUs per node of a resource spec", lambda s: s.gpus),
    _Numeric("modelarts_spec_cpu_cores", "CPU cores of a resource spec", lambda s: s.cpu_cores),
    _Numeric(
        "modelarts_spec_memory_bytes",
        "Memory of a resource spec in bytes",
        lambda s: None if s.memory_gib is None else s.memory_gib * GIB,
    ),
    _Numeric(
        "modelarts_spec_max_nodes", "Maximum nodes a job may use of a spec", lambda s: s.max_nodes
    ),
    _Numeric(
        "modelarts_spec_pricing_units",
        "Pricing units of a resource spec",
        lambda s: s.pricing_units,
    ),
)


def spec_families(
    items: Iterable[ItemState], regions: Regions, every: str, make: Maker[F]
) -> Iterator[F]:
    """The QueryJobResourceSpecs families."""
    no_resource = make(
        "gauge",
        "modelarts_spec_no_resource",
        f"1 when ModelArts reports no resources available for the spec, else 0, {every}.",
        _SPEC,
    )
    info = make(
        "gauge",
        "modelarts_spec_info",
        f"Descriptive attributes of a job resource spec (value always 1), {every}.",
        [*_SPEC, "spec_id", "gpu_type", "storage", "interface_type"],
    )
    numeric = [make("gauge", n.name, f"{n.help}, {every}.", _SPEC) for n in _NUMERIC]
    count = make(
        "gauge",
        "modelarts_specs",
        f"Resource specs available to a job type (spec_total_count), {every}.",
        [*PROJECT, "job_type"],
    )
    for item in items:
        if not isinstance(item.data, ResourceSpecs):
            continue
        project, job_type = item.key.project_id, item.key.name
        region = regions.get(project, "")
        if item.data.total_count is not None:
            count.add_metric([project, region, job_type], item.data.total_count)
        for spec in item.data.specs:
            labels = [project, region, job_type, spec.spec_code]
            if spec.no_resource is not None:
                no_resource.add_metric(labels, 1.0 if spec.no_resource else 0.0)
            info.add_metric(
                [*labels, spec.spec_id, spec.gpu_type, spec.storage, spec.interface_type], 1.0
            )
            for family, field in zip(numeric, _NUMERIC, strict=True):
                value = field.value(spec)
                if value is not None:
                    family.add_metric(labels, value)
    yield no_resource
    yield info
    yield from numeric
    yield count


def pool_families(items: Iterable[ItemState], regions: Regions, make: Maker[F]) -> Iterator[F]:
    """The ListPools (discovery) families."""
    pool = [*PROJECT, "pool"]
    info = make(
        "gauge",
        "modelarts_pool_info",
        "A discovered resource pool's names, type and workspace (value always 1); pools are "
        "discovered every discovery.refresh_interval.",
        [*pool, "display_name", "pool_type", "workspace_id"],
    )
    phase = make(
        "gauge",
        "modelarts_pool_phase",
        "1 for the phase the resource pool is in, 0 for the others: Creating, Running, "
        "Abnormal, Deleting, Error, and the pool's own when it is another one (Unknown when "
        "ModelArts gives none).",
        [*pool, "phase"],
    )
    nodes = make(
        "gauge",
        "modelarts_pool_nodes",
        "Nodes of a resource pool by flavor and state (available, abnormal, creating, deleting).",
        [*pool, "flavor", "state"],
    )
    spec_nodes = make(
        "gauge",
        "modelarts_pool_spec_nodes",
        "Nodes of a flavor the resource pool is configured for (spec.resources count).",
        [*pool, "flavor"],
    )
    spec_max = make(
        "gauge",
        "modelarts_pool_spec_max_nodes",
        "Most nodes of a flavor the resource pool may scale to (spec.resources maxCount).",
        [*pool, "flavor"],
    )
    for item in items:
        if not isinstance(item.data, PoolList):
            continue
        project = item.key.project_id
        for found in item.data.pools:
            labels = [project, regions.get(project, ""), found.name]
            info.add_metric([*labels, found.display_name, found.pool_type, found.workspace_id], 1.0)
            phases = POOL_PHASES if found.phase in POOL_PHASES else (*POOL_PHASES, found.phase)
            for name in phases:
                phase.add_metric([*labels, name], 1.0 if name == found.phase else 0.0)
            counts = {(flavor, state): n for flavor, state, n in found.nodes}
            flavors = dict.fromkeys(
                [f.flavor for f in found.flavors] + [flavor for flavor, _, _ in found.nodes]
            )
            for flavor in flavors:
                for state in NODE_STATES:
                    nodes.add_metric([*labels, flavor, state], counts.get((flavor, state), 0.0))
            for spec in found.flavors:
                if spec.count is not None:
                    spec_nodes.add_metric([*labels, spec.flavor], spec.count)
                if spec.max_count is not None:
                    spec_max.add_metric([*labels, spec.flavor], spec.max_count)
    yield info
    yield phase
    yield nodes
    yield spec_nodes
    yield spec_max


def families(snapshot: Snapshot, now: float, make: Maker[F]) -> Iterator[F]:
    """Every family of ``snapshot`` as seen at ``now``, made by ``make``."""
    fresh = [i for i in snapshot.items if snapshot.is_fresh(i, now)]
    every = every_text(snapshot)
    regions = dict(snapshot.regions)
    yield from workload_families(fresh, regions, every, make)
    yield from spec_families(fresh, regions, every, make)
    yield from pool_families(fresh, regions, make)
    yield from health_families(snapshot, regions, make)


def render_text(snapshot: Snapshot, now: float) -> bytes:
    """The text format of :func:`families`, written directly (see ``exporter.textformat``)."""
    return join_text(families(snapshot, now, TextFamily))


class SnapshotCollector(Collector):
    """All families for one snapshot as seen at ``now``, as prometheus_client objects."""

    def __init__(self, snapshot: Snapshot, now: float) -> None:
        self._snapshot = snapshot
        self._now = now

    def collect(self) -> Iterator[Metric]:
        return families(self._snapshot, self._now, client_family)

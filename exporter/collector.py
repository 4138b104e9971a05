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

Health: ``modelarts_up``, ``modelarts_poll_*`` per item, API request and error counters,
cycle counters, ``modelarts_exporter_build_info`` and ``modelarts_exporter_shard``. Data older
than ``stale_after`` is left out; health series stay so that an operator can see why.

Every series of a project has ``region`` (its target's) after ``project_id``; the examples
above leave it out.

Configuration reloads, named as Prometheus names its own::

    modelarts_exporter_config_last_reload_successful 1
    modelarts_exporter_config_last_reload_success_timestamp_seconds 1.8e+09
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
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
from exporter.textformat import Kind, TextFamily
from exporter.textformat import join as join_text

__all__ = ["SnapshotCollector", "families", "render_text"]

GIB = 2**30
_PROJECT = ["project_id", "region"]
_ITEM = [*_PROJECT, "api", "target"]
_SPEC = [*_PROJECT, "job_type", "spec_code"]


class Family(Protocol):
    """A metric family being filled: prometheus_client's, or a text one (``TextFamily``)."""

    def add_metric(self, labels: Sequence[str], value: float) -> None: ...


F = TypeVar("F", bound=Family)
#: project_id -> region (``Snapshot.regions``)
Regions = Mapping[str, str]
#: One sample: its label values and its value.
Row = tuple[tuple[str, ...], float]
F_co = TypeVar("F_co", bound=Family, covariant=True)


class Maker(Protocol[F_co]):
    """Makes an empty family of one kind: (kind, name, help, label names) -> family."""

    def __call__(
        self, kind: Kind, name: str, documentation: str, labels: Sequence[str]
    ) -> F_co: ...


def client_family(
    kind: Kind, name: str, documentation: str, labels: Sequence[str]
) -> GaugeMetricFamily | CounterMetricFamily:
    """A prometheus_client family (for OpenMetrics, which is rendered rarely)."""
    family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return family(name, documentation, labels=labels)


def _single(make: Maker[F], name: str, documentation: str, value: float) -> F:
    """A family of one unlabelled gauge."""
    family = make("gauge", name, documentation, ())
    family.add_metric((), value)
    return family


def _every(snapshot: Snapshot) -> str:
    return f"polled every {snapshot.poll_interval_seconds:g} seconds"


def workload_families(
    items: Iterable[ItemState], regions: Regions, every: str, make: Maker[F]
) -> Iterator[F]:
    """The ShowWorkloadStatistics families."""
    jobs = make(
        "gauge",
        "modelarts_pool_jobs",
        f"Jobs in a dedicated resource pool by job type and status, {every}.",
        [*_PROJECT, "pool", "type", "status"],
    )
    totals = make(
        "gauge",
        "modelarts_pool_type_jobs",
        f"Jobs of one type in a dedicated resource pool (the item's total), {every}.",
        [*_PROJECT, "pool", "type"],
    )
    for item in items:
        if not isinstance(item.data, WorkloadStatistics):
            continue
        project, pool = item.key.project_id, item.key.target
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
        [*_PROJECT, "job_type"],
    )
    for item in items:
        if not isinstance(item.data, ResourceSpecs):
            continue
        project, job_type = item.key.project_id, item.key.target
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
    pool = [*_PROJECT, "pool"]
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


def _located(rows: Iterable[Row], regions: Regions) -> Iterator[Row]:
    """Rows whose label values start with a project_id, its region inserted after it."""
    return (((key[0], regions.get(key[0], ""), *key[1:]), value) for key, value in rows)


def health_families(snapshot: Snapshot, regions: Regions, make: Maker[F]) -> Iterator[F]:
    """The exporter's own view of how polling goes."""
    every = _every(snapshot)
    located = partial(_located, regions=regions)

    yield _table(
        make,
        "gauge",
        "modelarts_up",
        "1 when the project's last poll cycle reached ModelArts with accepted credentials, "
        "else 0 (a cycle that sent nothing keeps the value).",
        _PROJECT,
        located(((project,), float(reached)) for project, reached in snapshot.up),
    )
    yield _table(
        make,
        "gauge",
        "modelarts_credentials_refused",
        "1 from a 401/403 answer to the project's requests until ModelArts accepts a request "
        "again (while the exporter waits out its refusal backoff too), else 0.",
        _PROJECT,
        located(((project,), float(refused)) for project, refused in snapshot.credentials_refused),
    )
    yield _table(
        make,
        "gauge",
        "modelarts_credentials_last_reload_successful",
        "1 when the project's credential files (secrets given as {file: PATH}), read again "
        "whenever one changes, were read well the last time (or come from no file), else 0: "
        "the previous credentials are still in use.",
        _PROJECT,
        located(((project,), float(read)) for project, read in snapshot.credentials_read),
    )
    yield _table(
        make,
        "gauge",
        "modelarts_credentials_expiry_timestamp_seconds",
        "Unix time the project's credentials in use expire, where that is known: an IAM "
        "token, or temporary AK/SK from the metadata service (refreshed before it passes).",
        _PROJECT,
        located(((project,), at) for project, at in snapshot.credentials_expiry),
    )

    success = make(
        "gauge",
        "modelarts_poll_success",
        f"1 when the last poll of the item succeeded, else 0; items are {every}.",
        _ITEM,
    )
    duration = make(
        "gauge",
        "modelarts_poll_duration_seconds",
        "Wall time of the last poll of the item, retries included.",
        _ITEM,
    )
    last_success = make(
        "gauge",
        "modelarts_poll_last_success_timestamp_seconds",
        "Unix time of the item's last successful poll.",
        _ITEM,
    )
    for item in snapshot.items:
        project = item.key.project_id
        labels = [project, regions.get(project, ""), item.key.api.value, item.key.target]
        success.add_metric(labels, 1.0 if item.success else 0.0)
        duration.add_metric(labels, item.duration_seconds)
        if item.last_success is not None:
            last_success.add_metric(labels, item.last_success)
    yield success
    yield duration
    yield last_success
    yield _table(
        make,
        "gauge",
        "modelarts_poll_last_error_info",
        "The error code of the item's last poll when it failed (value always 1; no series "
        "while the last poll succeeded), e.g. ModelArts.50015001 for a pool that does not exist.",
        [*_ITEM, "error_code"],
        (
            (
                (key.project_id, regions.get(key.project_id, ""), key.api.value, key.target, code),
                1.0,
            )
            for key, code in (
                (item.key, item.error_code) for item in snapshot.items if not item.success
            )
            if code is not None
        ),
    )

    yield _table(
        make,
        "counter",
        "modelarts_api_requests",
        "HTTP requests sent to ModelArts (and IAM, api 'iam_tokens') by API and response "
        "status ('none': no response; 401, 403 and 429 start at 0).",
        [*_PROJECT, "api", "code"],
        located(snapshot.requests),
    )
    yield _table(
        make,
        "counter",
        "modelarts_poll_errors",
        "Failed polls by API and error code (ModelArts code, or the exporter's word for a "
        "failure without one, e.g. timeout).",
        [*_PROJECT, "api", "error_code"],
        located(snapshot.errors),
    )
    yield _table(
        make,
        "gauge",
        "modelarts_request_budget_rate",
        "Requests per second the project's request budget allows now: requests_per_second, "
        "lower after a 429 until it recovers.",
        _PROJECT,
        located(((project,), rate) for project, rate in snapshot.request_rates),
    )
    yield from _cycle_families(snapshot, regions, make)


def _table(
    make: Maker[F],
    kind: Kind,
    name: str,
    documentation: str,
    labels: list[str],
    rows: Iterable[Row],
) -> F:
    """A family with one sample per (label values, value) row."""
    family = make(kind, name, documentation, labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def _cycle_families(snapshot: Snapshot, regions: Regions, make: Maker[F]) -> Iterator[F]:
    project = _PROJECT
    located = partial(_located, regions=regions)

    yield _table(
        make,
        "counter",
        "modelarts_exporter_poll_cycles",
        "Poll cycles completed; every project is polled on its own loop.",
        project,
        located(((p,), stats.cycles) for p, stats in snapshot.cycles),
    )
    yield _table(
        make,
        "counter",
        "modelarts_exporter_skipped_cycles",
        "Poll cycles of the project skipped because its previous cycle overran the interval.",
        project,
        located(((p,), stats.skipped) for p, stats in snapshot.cycles),
    )
    yield _table(
        make,
        "gauge",
        "modelarts_exporter_poll_cycle_duration_seconds",
        "Wall time of the project's last complete poll cycle.",
        project,
        located(((p,), stats.last_duration_seconds) for p, stats in snapshot.cycles),
    )
    yield _single(
        make,
        "modelarts_exporter_poll_interval_seconds",
        "Configured poll interval.",
        snapshot.poll_interval_seconds,
    )
    yield _single(
        make,
        "modelarts_exporter_stale_after_seconds",
        "Age after which polled data is no longer exposed.",
        snapshot.stale_after_seconds,
    )
    build = make(
        "gauge",
        "modelarts_exporter_build_info",
        "Version of the exporter and of Python (value always 1).",
        ["version", "python_version"],
    )
    build.add_metric([__version__, platform.python_version()], 1.0)
    yield build
    shard = make(
        "gauge",
        "modelarts_exporter_shard",
        "This exporter's shard of total_shards (value always 1): it polls the pools whose "
        "stable hash falls to it, and shard 0 also polls the resource specs.",
        ["shard", "total_shards"],
    )
    index, total = snapshot.shard
    shard.add_metric([str(index), str(total)], 1.0)
    yield shard
    yield from _config_families(snapshot, make)


def _config_families(snapshot: Snapshot, make: Maker[F]) -> Iterator[F]:
    status = snapshot.config
    yield _single(
        make,
        "modelarts_exporter_config_last_reload_successful",
        "1 when the last configuration load succeeded (at start, or a reload by SIGHUP or "
        "POST /-/reload), else 0: the reload was rejected, the previous one is still in use.",
        1.0 if status.last_reload_successful else 0.0,
    )
    if status.last_success is not None:
        yield _single(
            make,
            "modelarts_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load, the initial one included.",
            status.last_success,
        )


def families(snapshot: Snapshot, now: float, make: Maker[F]) -> Iterator[F]:
    """Every family of ``snapshot`` as seen at ``now``, made by ``make``."""
    fresh = [i for i in snapshot.items if snapshot.is_fresh(i, now)]
    every = _every(snapshot)
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

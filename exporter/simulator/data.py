"""What the simulator serves: pool job counts, pool metadata and resource specs, plain data.

The documented names (status keys, job types, spec fields, pool phases and node states), the
records handed to tests (:class:`RecordedRequest`, :class:`SimulatorState`),
:func:`default_specs`, validation of counts, pool metadata and specs set through the API or
``/_simulator``, and the demo's seeding and drift.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "NODE_STATES",
    "POOL_PHASES",
    "POOL_TYPES",
    "SPEC_FIELDS",
    "SPEC_JOB_TYPES",
    "STATUS_KEYS",
    "WORKLOAD_TYPES",
    "PoolCounts",
    "PoolItem",
    "RecordedRequest",
    "SimulatorState",
    "Spec",
    "default_specs",
]

STATUS_KEYS = (
    "Queue",
    "Pending",
    "Abnormal",
    "Terminating",
    "Creating",
    "Running",
    "Completed",
    "Terminated",
    "Failed",
)
"""Documented status keys of a WorkloadStatistics item, in documented order."""

WORKLOAD_TYPES = ("train", "infer", "notebook")
"""Documented job types of ShowWorkloadStatistics."""

SPEC_JOB_TYPES = ("train", "inference")
"""Documented ``job_type`` values of QueryJobResourceSpecs."""

SPEC_FIELDS = (
    "spec_id",
    "core",
    "cpu",
    "gpu_num",
    "gpu_type",
    "spec_code",
    "unit_num",
    "max_num",
    "storage",
    "interface_type",
    "no_resource",
)
"""Fields of one resource spec, in the order of the API Reference's sample response."""

POOL_PHASES = ("Creating", "Running", "Abnormal", "Deleting", "Error")
"""Documented ``status.phase`` values of a ListPools item."""

POOL_TYPES = ("Dedicate", "Logical")
"""Documented ``spec.type`` values of a ListPools item."""

NODE_STATES = ("creating", "available", "abnormal", "deleting")
"""Documented node states under ``status.resources`` of a ListPools item, in order."""

PoolCounts = dict[str, dict[str, int]]
"""Job type -> status key (API casing) -> number of jobs."""
Spec = dict[str, object]
"""One resource spec in API JSON form."""
PoolItem = dict[str, object]
"""One ListPools item (``"kind": "Pool"``) in API JSON form."""

_NAME_LABEL = "os.modelarts/name"
_WORKSPACE_LABEL = "os.modelarts/workspace.id"
_DEFAULT_SCOPE = ("Train", "Infer", "Notebook")
_DEFAULT_RESOURCES: Mapping[str, tuple[int, int]] = {"modelarts.vm.cpu.8u": (1, 1)}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered (or dropped: ``status`` 0)."""

    time: float
    method: str
    path: str
    query: str
    status: int
    access_key: str | None


@dataclass(frozen=True)
class SimulatorState:
    """Deep copy of the data: project -> pool -> counts; project -> job type -> specs;
    project -> pool -> ListPools item (``pool_info``, exactly as ListPools serves it)."""

    pools: dict[str, dict[str, PoolCounts]]
    specs: dict[str, dict[str, list[Spec]]]
    pool_info: dict[str, dict[str, PoolItem]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "pools": copy.deepcopy(self.pools),
            "specs": copy.deepcopy(self.specs),
            "pool_info": copy.deepcopy(self.pool_info),
        }


@dataclass
class _PoolInfo:
    """One pool's ListPools metadata; ``nodes`` holds every state of :data:`NODE_STATES`."""

    display_name: str
    pool_type: str
    workspace_id: str
    phase: str
    scope: list[str]
    resources: dict[str, tuple[int, int]]  # flavor -> (count, maxCount)
    nodes: dict[str, dict[str, int]]  # state -> flavor -> node count
    created: float

    def labels(self) -> dict[str, str]:
        return {_NAME_LABEL: self.display_name, _WORKSPACE_LABEL: self.workspace_id}

    def item(self, name: str) -> PoolItem:
        """The ListPools item: flavors with no node in a state are left out of its list."""
        created = datetime.fromtimestamp(self.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        resources = [
            {"flavor": flavor, "count": count, "maxCount": max_count}
            for flavor, (count, max_count) in self.resources.items()
        ]
        nodes = {
            state: [{"flavor": f, "count": n} for f, n in self.nodes[state].items() if n > 0]
            for state in NODE_STATES
        }
        return {
            "kind": "Pool",
            "apiVersion": "v2",
            "metadata": {"name": name, "creationTimestamp": created, "labels": self.labels()},
            "spec": {"type": self.pool_type, "scope": list(self.scope), "resources": resources},
            "status": {"phase": self.phase, "resources": nodes},
        }


def default_specs(job_type: str) -> list[Spec]:
    """A realistic spec list for ``train`` or ``inference`` (CPU, GPU and Ascend NPU)."""

    def spec(
        spec_id: int, core: str, cpu: str, gpu_num: int, gpu_type: str, code: str,
        unit_num: int, max_num: int, no_resource: bool,
    ) -> Spec:  # fmt: skip
        values = (spec_id, core, cpu, gpu_num, gpu_type, code, unit_num, max_num, "", 1,
                  no_resource)  # fmt: skip
        return dict(zip(SPEC_FIELDS, values, strict=True))

    if job_type == "train":
        return [
            spec(2, "2", "8", 0, "", "modelarts.vm.cpu.2u", 1, 2, False),
            spec(3, "8", "32", 0, "", "modelarts.vm.cpu.8u", 1, 4, False),
            spec(4, "8", "64", 1, "v100", "modelarts.vm.gpu.v100", 1, 4, False),
            spec(5, "64", "512", 8, "v100", "modelarts.bm.gpu.8v100", 8, 8, True),
            spec(6, "8", "32", 1, "t4", "modelarts.vm.gpu.t4", 1, 4, False),
            spec(7, "192", "1536", 8, "ascend-snt9b3", "modelarts.bm.npu.arm.8snt9b3.d", 8, 16,
                 True),
        ]  # fmt: skip
    if job_type == "inference":
        return [
            spec(101, "2", "8", 0, "", "modelarts.vm.cpu.2u", 1, 1, False),
            spec(102, "4", "16", 0, "", "modelarts.vm.cpu.4u", 1, 1, False),
            spec(103, "8", "32", 1, "t4", "modelarts.vm.gpu.t4", 1, 1, False),
            spec(104, "24", "192", 1, "ascend-snt9b3", "modelarts.vm.npu.arm.1snt9b3", 1, 1,
                 True),
        ]  # fmt: skip
    raise ValueError(f"no default specs for job type {job_type!r}")


# --------------------------------------------------------------------------- validation


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be an integer >= 0")
    return value


def _count_row(row: object, where: str, what: str) -> dict[str, int]:
    """A mapping of names (``what``) to counts, e.g. status -> jobs or flavor -> nodes."""
    if not isinstance(row, Mapping):
        raise TypeError(f"{where} must map {what} to count")
    result: dict[str, int] = {}
    for key, count in row.items():
        if not isinstance(key, str):
            raise TypeError(f"{what} keys of {where} must be strings")
        result[key] = _count(count, f"{where}[{key!r}]")
    return result


def _validate_counts(counts: object) -> PoolCounts:
    if not isinstance(counts, Mapping):
        raise TypeError("counts must map job type to {status: count}")
    result: PoolCounts = {}
    for job_type, statuses in counts.items():
        if not isinstance(job_type, str):
            raise TypeError(f"counts[{job_type!r}] must map status to count")
        result[job_type] = _count_row(statuses, f"counts[{job_type!r}]", "status")
    return result


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string")
    return value


def _validate_resources(resources: object) -> dict[str, tuple[int, int]]:
    if not isinstance(resources, Mapping):
        raise TypeError("resources must map flavor to (count, maxCount)")
    result: dict[str, tuple[int, int]] = {}
    for flavor, pair in resources.items():
        where = f"resources[{flavor!r}]"
        if not isinstance(flavor, str) or not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(f"{where} must be a (count, maxCount) pair")
        count, max_count = _count(pair[0], f"{where} count"), _count(pair[1], f"{where} maxCount")
        if count > max_count:
            raise ValueError(f"{where}: count {count} exceeds maxCount {max_count}")
        result[flavor] = (count, max_count)
    return result


def _validate_nodes(nodes: object) -> dict[str, dict[str, int]]:
    if not isinstance(nodes, Mapping):
        raise TypeError("nodes must map state to {flavor: count}")
    unknown = sorted(str(state) for state in nodes if state not in NODE_STATES)
    if unknown:
        raise ValueError(f"unknown node states {unknown}; known: {list(NODE_STATES)}")
    return {
        state: _count_row(nodes.get(state, {}), f"nodes[{state!r}]", "flavor")
        for state in NODE_STATES
    }


def _validate_pool_info(
    pool: str,
    created: float,
    *,
    display_name: object = None,
    pool_type: object = "Dedicate",
    workspace_id: object = "0",
    phase: object = "Running",
    scope: object = _DEFAULT_SCOPE,
    resources: object = None,
    nodes: object = None,
) -> _PoolInfo:
    """Checked metadata; the defaults are those of ``Simulator.set_pool_info``."""
    if isinstance(scope, str | bytes) or not isinstance(scope, Sequence):
        raise TypeError("scope must be a list of strings")
    checked = _validate_resources(_DEFAULT_RESOURCES if resources is None else resources)
    if nodes is None:
        nodes = {"available": {flavor: count for flavor, (count, _) in checked.items()}}
    return _PoolInfo(
        display_name=_text(pool if display_name is None else display_name, "display_name"),
        pool_type=_text(pool_type, "pool_type"),
        workspace_id=_text(workspace_id, "workspace_id"),
        phase=_text(phase, "phase"),
        scope=[_text(item, "each scope entry") for item in scope],
        resources=checked,
        nodes=_validate_nodes(nodes),
        created=created,
    )


def _validate_specs(specs: object) -> list[Spec]:
    if isinstance(specs, str | bytes) or not isinstance(specs, Sequence):
        raise TypeError("specs must be a list of objects")
    result: list[Spec] = []
    for spec in specs:
        if not isinstance(spec, Mapping) or not all(isinstance(k, str) for k in spec):
            raise TypeError("each spec must be an object")
        try:
            copied = json.loads(json.dumps(dict(spec)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"spec is not JSON-serialisable: {exc}") from exc
        ordered: Spec = {k: copied[k] for k in SPEC_FIELDS if k in copied}
        ordered.update({k: v for k, v in copied.items() if k not in ordered})
        result.append(ordered)
    return result


# --------------------------------------------------------------------------- drift


_TRANSITIONS = (
    ("Queue", "Pending"),
    ("Pending", "Creating"),
    ("Creating", "Running"),
    ("Running", "Completed"),
    ("Running", "Completed"),
    ("Running", "Failed"),
    ("Running", "Terminating"),
    ("Terminating", "Terminated"),
    ("Running", "Abnormal"),
    ("Abnormal", "Running"),
    ("Abnormal", "Failed"),
)


def _drift_counts(statuses: dict[str, int], rng: random.Random) -> None:
    for key in STATUS_KEYS:
        statuses.setdefault(key, 0)
    for src, dst in rng.sample(_TRANSITIONS, k=3):
        available = statuses[src]
        if available > 0:
            moved = rng.randint(1, min(available, 3))
            statuses[src] -= moved
            statuses[dst] += moved
    if rng.random() < 0.4:
        statuses["Queue"] += rng.randint(1, 2)
    if rng.random() < 0.05:
        statuses["Abnormal"] += 1
    if rng.random() < 0.05:
        statuses["Failed"] += 1
    if rng.random() < 0.1:  # finished jobs get deleted now and then
        for key in ("Completed", "Terminated", "Failed"):
            statuses[key] = max(0, statuses[key] - rng.randint(0, 2))


def _move_node(source: dict[str, int], target: dict[str, int], rng: random.Random) -> None:
    flavors = [flavor for flavor, count in source.items() if count > 0]
    if flavors:
        flavor = rng.choice(flavors)
        source[flavor] -= 1
        target[flavor] = target.get(flavor, 0) + 1


def _drift_nodes(info: _PoolInfo, rng: random.Random) -> None:
    """Now and then all abnormal nodes recover, or one available node turns abnormal; a
    Running or Abnormal pool is then Abnormal exactly when it has abnormal nodes."""
    available, abnormal = info.nodes["available"], info.nodes["abnormal"]
    if rng.random() < 0.05:
        while any(abnormal.values()):
            _move_node(abnormal, available, rng)
    if rng.random() < 0.05:
        _move_node(available, abnormal, rng)
    if info.phase in ("Running", "Abnormal"):
        info.phase = "Abnormal" if any(abnormal.values()) else "Running"


_DEMO_POOLS: tuple[tuple[str, tuple[str, ...], dict[str, tuple[int, int]]], ...] = (
    ("Training (GPU)", ("Train",), {"modelarts.bm.gpu.8v100": (4, 8),
                                    "modelarts.vm.cpu.8u": (2, 4)}),
    ("Inference (NPU)", ("Infer",), {"modelarts.vm.npu.arm.1snt9b3": (6, 12),
                                     "modelarts.vm.gpu.t4": (2, 4)}),
    ("Notebooks (GPU)", ("Notebook",), {"modelarts.vm.gpu.t4": (3, 6)}),
    ("Training (NPU)", ("Train",), {"modelarts.bm.npu.arm.8snt9b3.d": (2, 4)}),
)  # fmt: skip


def _demo_pool_info(index: int) -> tuple[str, tuple[str, ...], dict[str, tuple[int, int]]]:
    """Display name, scope and flavors of the ``index``-th demo pool (a GPU/NPU mix)."""
    name, scope, resources = _DEMO_POOLS[index % len(_DEMO_POOLS)]
    lap = index // len(_DEMO_POOLS)
    return (f"{name} {lap + 1}" if lap else name), scope, dict(resources)


def _demo_counts(job_type: str, rng: random.Random) -> dict[str, int]:
    ranges = {
        "train": {"Queue": 2, "Pending": 2, "Creating": 1, "Running": 6, "Completed": 40,
                  "Terminated": 5, "Failed": 3},
        "infer": {"Pending": 1, "Creating": 1, "Running": 4, "Terminated": 3, "Failed": 1},
        "notebook": {"Pending": 1, "Running": 5, "Terminated": 6, "Failed": 1},
    }  # fmt: skip
    upper = ranges.get(job_type, {})
    counts = {key: rng.randint(0, upper.get(key, 0)) for key in STATUS_KEYS}
    counts["Running"] = max(1, counts["Running"])
    return counts

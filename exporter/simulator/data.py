"""What the simulator serves: pool job counts and resource specs, plain data in and out.

The documented names (status keys, job types, spec fields), the records handed to tests
(:class:`RecordedRequest`, :class:`SimulatorState`), :func:`default_specs`, validation of
counts and specs set through the API or ``/_simulator``, and the demo's seeding and drift.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "SPEC_FIELDS",
    "SPEC_JOB_TYPES",
    "STATUS_KEYS",
    "WORKLOAD_TYPES",
    "PoolCounts",
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
"""Fields of one resource spec, in the order of the seed's sample response."""

PoolCounts = dict[str, dict[str, int]]
"""Job type -> status key (API casing) -> number of jobs."""
Spec = dict[str, object]
"""One resource spec in API JSON form."""


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
    """Deep copy of the data: project -> pool -> counts; project -> job type -> specs."""

    pools: dict[str, dict[str, PoolCounts]]
    specs: dict[str, dict[str, list[Spec]]]

    def to_json(self) -> dict[str, object]:
        return {"pools": copy.deepcopy(self.pools), "specs": copy.deepcopy(self.specs)}


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


def _validate_counts(counts: object) -> PoolCounts:
    if not isinstance(counts, Mapping):
        raise TypeError("counts must map job type to {status: count}")
    result: PoolCounts = {}
    for job_type, statuses in counts.items():
        if not isinstance(job_type, str) or not isinstance(statuses, Mapping):
            raise TypeError(f"counts[{job_type!r}] must map status to count")
        row: dict[str, int] = {}
        for status, count in statuses.items():
            if not isinstance(status, str):
                raise TypeError(f"status keys of {job_type!r} must be strings")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"counts[{job_type!r}][{status!r}] must be an integer >= 0")
            row[status] = count
        result[job_type] = row
    return result


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
